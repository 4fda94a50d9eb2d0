package pgclient_test

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/omnibridge/omnibridge/pgclient"
	"github.com/omnibridge/omnibridge/pgembed"
)

// testAuthFailureEvent checks that a failed authentication raises exactly
// one security event, describing the client, with no secret in it.
func testAuthFailureEvent(t *testing.T, cl *pgembed.Cluster) {
	const wrong = "Wrong-Password-42"
	files := cl.TLSFiles()
	verifyFull := pgclient.TLSConfig{Mode: pgclient.TLSModeVerifyFull, RootCert: files.CACert}

	t.Run("at open", func(t *testing.T) {
		t.Parallel()
		_, events, err := tlsOpen(t, tlsURL(t, cl, "scram_user", wrong), verifyFull, func(cfg *pgclient.Config) {
			cfg.Retry.ConnectRetries = 3 // would retry, were the failure transient
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "28P01", pgErr.Code)
		require.True(t, pgclient.IsPermanent(err))
		require.NotContains(t, err.Error(), wrong)

		got := requireEvents(t, events, pgclient.SecurityEventAuthFailed, 1)
		require.Len(t, events.securityEvents(), 1, "nothing else")
		e := got[0]
		require.False(t, e.Success)
		require.Equal(t, "127.0.0.1", e.Host)
		require.EqualValues(t, cl.Port(), e.Port)
		require.Equal(t, "scram_user", e.User)
		require.Equal(t, "postgres", e.Database)
		require.Equal(t, serviceName(t), e.Application)
		require.Equal(t, serviceName(t), e.Service)
		require.Equal(t, pgclient.TLSModeVerifyFull, e.TLSMode)
		require.Contains(t, e.Details, "password authentication failed")
		require.False(t, e.At.IsZero())
		for _, v := range []any{e, e.ClientInfo()} {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			require.NotContains(t, string(b), wrong)
			require.NotContains(t, string(b), scramPassword)
		}
	})

	t.Run("on a new pool connection", func(t *testing.T) {
		t.Parallel()
		// The role's password changes while the client runs: its next new
		// connection fails, once, and is not retried.
		su := pgConnect(t, cl.SocketURL("postgres"))
		ctx := testCtx(t)
		_, err := su.Exec(ctx, "CREATE ROLE rotating LOGIN PASSWORD 'Old-Secret-7'")
		require.NoError(t, err)
		c, events, err := tlsOpen(t, tlsURL(t, cl, "rotating", "Old-Secret-7"), verifyFull, func(cfg *pgclient.Config) {
			cfg.MaxConns = 2
			cfg.Breaker.FailureThreshold = 100
		})
		require.NoError(t, err)
		_, err = su.Exec(ctx, "ALTER ROLE rotating PASSWORD 'New-Secret-8'")
		require.NoError(t, err)
		held, err := c.Acquire(ctx)
		require.NoError(t, err)
		err = selectOne(ctx, c)
		held.Release()
		require.True(t, pgclient.IsPermanent(err), "%v", err)
		e := requireEvents(t, events, pgclient.SecurityEventAuthFailed, 1)[0]
		require.Equal(t, "rotating", e.User)
		require.NotContains(t, e.Details, "Old-Secret-7")
	})
}
