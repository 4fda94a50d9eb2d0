package pgclient_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
)

func TestOperations(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 2, MaxConns: 4})
	c, ctx := b.client, ctxT(t)

	_, err := c.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
	require.NoError(t, err)
	tag, err := c.Exec(ctx, "INSERT INTO items VALUES ($1, $2), ($3, $4)", 1, "one", 2, "two")
	require.NoError(t, err)
	require.EqualValues(t, 2, tag.RowsAffected())

	t.Run("Query", func(t *testing.T) {
		rows, err := c.Query(ctx, "SELECT id, name FROM items ORDER BY id")
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
			ID   int
			Name string
		}])
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, "two", got[1].Name)
	})

	t.Run("QueryReadToEndReleases", func(t *testing.T) {
		rows, err := c.Query(ctx, "SELECT id FROM items")
		require.NoError(t, err)
		for rows.Next() {
		}
		require.NoError(t, rows.Err())
		require.Zero(t, c.Stats().InUse)
	})

	t.Run("QueryError", func(t *testing.T) {
		rows, err := c.Query(ctx, "SELECT nope FROM items")
		require.Error(t, err)
		require.False(t, rows.Next())
		require.Error(t, rows.Err())
	})

	t.Run("QueryRow", func(t *testing.T) {
		var name string
		require.NoError(t, c.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 1).Scan(&name))
		require.Equal(t, "one", name)
		err := c.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 99).Scan(&name)
		require.ErrorIs(t, err, pgx.ErrNoRows)
	})

	t.Run("SendBatch", func(t *testing.T) {
		batch := &pgx.Batch{}
		batch.Queue("INSERT INTO items VALUES ($1, $2)", 3, "three")
		batch.Queue("SELECT count(*) FROM items")
		br := c.SendBatch(ctx, batch)
		_, err := br.Exec()
		require.NoError(t, err)
		var n int
		require.NoError(t, br.QueryRow().Scan(&n))
		require.Equal(t, 3, n)
		require.NoError(t, br.Close())
	})

	t.Run("SendBatchBeginTx", func(t *testing.T) {
		batch := &pgx.Batch{}
		batch.BeginTx(pgx.TxOptions{})
		batch.Queue("INSERT INTO items VALUES ($1, $2)", 10, "ten")
		br := c.SendBatch(ctx, batch)
		require.NoError(t, br.Close())
		tx := br.Tx()
		require.NotNil(t, tx)
		require.EqualValues(t, 1, c.Stats().InUse, "the batch's transaction holds the connection")
		require.NoError(t, tx.Rollback(ctx))
	})

	t.Run("CopyFrom", func(t *testing.T) {
		n, err := c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"},
			pgx.CopyFromRows([][]any{{100, "a"}, {101, "b"}, {102, "c"}}))
		require.NoError(t, err)
		require.EqualValues(t, 3, n)
	})

	t.Run("InTx", func(t *testing.T) {
		boom := errors.New("boom")
		err := c.InTx(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO items VALUES (200, 'rolled back')")
			require.NoError(t, err)
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.NoError(t, c.InTx(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO items VALUES (201, 'kept')")
			return err
		}))
		var ids []int
		rows, _ := c.Query(ctx, "SELECT id FROM items WHERE id >= 200 ORDER BY id")
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int])
		require.NoError(t, err)
		require.Equal(t, []int{201}, ids)
	})

	t.Run("InTxPanic", func(t *testing.T) {
		require.Panics(t, func() {
			_ = c.InTx(ctx, func(tx pgx.Tx) error { panic("boom") })
		})
		require.Zero(t, c.Stats().InUse)
	})

	t.Run("Acquire", func(t *testing.T) {
		conn, err := c.Acquire(ctx)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SET search_path = pg_catalog")
		require.NoError(t, err)
		var path string
		require.NoError(t, conn.QueryRow(ctx, "SHOW search_path").Scan(&path))
		require.Equal(t, "pg_catalog", path)
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		_, err = conn.Exec(ctx, "RESET search_path")
		require.NoError(t, err)
		conn.Release()
		conn.Release()
	})

	s := c.Stats()
	require.Positive(t, s.QueryCount)
	require.Positive(t, s.FailedQueries)
	require.Equal(t, s.AcquiredConnections, s.ReleasedConnections)
}

func TestClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, pgclient.Config{MinConns: 1, MaxConns: 2})
	b.client.Close()
	ctx := ctxT(t)
	_, err := b.client.Exec(ctx, "SELECT 1")
	require.ErrorIs(t, err, pgclient.ErrClosed)
	require.ErrorIs(t, b.client.QueryRow(ctx, "SELECT 1").Scan(new(int)), pgclient.ErrClosed)
	require.Equal(t, pgclient.StatusUnhealthy, b.client.Health(context.Background()).Status)
}
