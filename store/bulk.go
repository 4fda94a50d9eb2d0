package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultCopyThreshold is the number of rows from which a bulk insert uses
// COPY rather than a multi-row INSERT. It was measured, not guessed (ADR-016
// guessed 1000): BenchmarkBulkCrossover fits time = fixed + per-row·rows for
// both methods on ~500-byte events into the partitioned, indexed
// omnibridge.hook_events. On the reference machine (2 shared cores,
// PostgreSQL 15 on the same host) COPY costs about 300µs more per call (one
// more round trip and its setup) and 15-20% less per row, and four runs put
// the crossover at 21, 31, 33 and 39 rows. Measure yours with
//
//	go test -run '^$' -bench BulkCrossover -benchtime 800x ./store/
//
// and set BulkOptions.CopyThreshold; where the database is across a network,
// the round trip weighs more and the crossover moves up.
const DefaultCopyThreshold = 32

// DefaultEventsCopyThreshold is DefaultCopyThreshold for BulkInsertEvents,
// whose COPY path also opens a transaction and reserves the deliveries first
// (three more round trips, about 2 ms more per call on the reference machine
// under load) while its cost per event measured within noise of the single
// INSERT … FROM unnest statement (BenchmarkBulkEventsCrossover: 76 µs per row
// for unnest, 85 µs for COPY with the machine heavily loaded;
// BenchmarkBulkInsertEvents: equal rates from 1000 to 10000 events). From
// 1000 events the extra fixed cost is under 3%, and COPY streams the rows
// where the single statement would hold them all in one parameter array, so
// large loads COPY.
const DefaultEventsCopyThreshold = 1000

// maxBindParameters is the most parameters a PostgreSQL statement takes.
const maxBindParameters = 65535

// BulkOptions tunes the adaptive bulk insert.
type BulkOptions struct {
	// CopyThreshold is the number of rows from which COPY is used; smaller
	// inserts use a multi-row INSERT … VALUES. Defaults to
	// DefaultCopyThreshold. Set it to 1 to always COPY, or to a very large
	// number to never COPY.
	CopyThreshold int
	// EventsCopyThreshold is CopyThreshold for BulkInsertEvents. Defaults to
	// DefaultEventsCopyThreshold.
	EventsCopyThreshold int
}

// WithDefaults returns o with zero fields set to their defaults.
func (o BulkOptions) WithDefaults() BulkOptions {
	o.CopyThreshold = cmp.Or(o.CopyThreshold, DefaultCopyThreshold)
	o.EventsCopyThreshold = cmp.Or(o.EventsCopyThreshold, DefaultEventsCopyThreshold)
	return o
}

// Validate reports every invalid field of o (after WithDefaults).
func (o BulkOptions) Validate() error {
	var errs []error
	if o.CopyThreshold < 1 {
		errs = append(errs, fmt.Errorf("bulk options: CopyThreshold %d must be at least 1", o.CopyThreshold))
	}
	if o.EventsCopyThreshold < 1 {
		errs = append(errs, fmt.Errorf("bulk options: EventsCopyThreshold %d must be at least 1", o.EventsCopyThreshold))
	}
	return errors.Join(errs...)
}

// BulkMethod is how a bulk insert sends its rows.
type BulkMethod string

// The bulk insert methods.
const (
	// BulkValues sends multi-row INSERT … VALUES statements (pipelined when
	// the rows need more than one statement).
	BulkValues BulkMethod = "insert"
	// BulkCopy uses the COPY protocol.
	BulkCopy BulkMethod = "copy"
)

// Method is the method BulkInsertWith uses for rows rows.
func (o BulkOptions) Method(rows int) BulkMethod {
	if rows >= o.WithDefaults().CopyThreshold {
		return BulkCopy
	}
	return BulkValues
}

// EventsMethod is the method BulkInsertEventsWith uses for a batch of events
// without explicit ids.
func (o BulkOptions) EventsMethod(events int) BulkMethod {
	if events >= o.WithDefaults().EventsCopyThreshold {
		return BulkCopy
	}
	return BulkValues
}

// ErrBulkShape is wrapped by the errors of a bulk insert whose table, columns
// or rows do not fit together.
var ErrBulkShape = errors.New("store: bulk insert: every row needs one value per column, and a table and at least one column are required")

// BulkInsert implements ADR-016's adaptive_bulk_insert with the default
// options: see BulkInsertWith.
func (s *Store) BulkInsert(ctx context.Context, table pgx.Identifier, columns []string, rows [][]any) (int64, error) {
	return s.BulkInsertWith(ctx, BulkOptions{}, table, columns, rows)
}

// BulkInsertWith implements ADR-016's adaptive_bulk_insert: it inserts rows
// into any table's columns by COPY when there are at least
// opts.CopyThreshold rows, else by a multi-row INSERT, and returns the number
// of rows inserted. Either way the insert is atomic: all rows or none.
// Values are encoded by pgx as for any query parameter (COPY needs types pgx
// can encode in binary, which covers every built-in type).
//
// It does not deduplicate or validate the values; for events use
// BulkInsertEvents.
func (s *Store) BulkInsertWith(ctx context.Context, opts BulkOptions, table pgx.Identifier, columns []string, rows [][]any) (int64, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return 0, fmt.Errorf("store: bulk insert: %w", err)
	}
	if err := checkBulkShape(table, columns, rows); err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if opts.Method(len(rows)) == BulkCopy {
		n, err := s.db.CopyFrom(ctx, table, columns, pgx.CopyFromRows(rows))
		if err != nil {
			return n, fmt.Errorf("store: bulk insert into %s: copy: %w", table.Sanitize(), err)
		}
		return n, nil
	}
	n, err := insertValues(ctx, s.db, table, columns, rows)
	if err != nil {
		return 0, fmt.Errorf("store: bulk insert into %s: %w", table.Sanitize(), err)
	}
	return n, nil
}

func checkBulkShape(table pgx.Identifier, columns []string, rows [][]any) error {
	if len(table) == 0 || len(columns) == 0 {
		return fmt.Errorf("%w: table %q, columns %q", ErrBulkShape, table, columns)
	}
	for i, r := range rows {
		if len(r) != len(columns) {
			return fmt.Errorf("%w: row %d has %d values for %d columns", ErrBulkShape, i, len(r), len(columns))
		}
	}
	return nil
}

// execer is what insertValues needs: a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// insertValues inserts rows with multi-row INSERT … VALUES statements, as many
// rows per statement as the parameter limit allows, pipelined in one batch
// (one implicit transaction) when more than one statement is needed.
func insertValues(ctx context.Context, db execer, table pgx.Identifier, columns []string, rows [][]any) (int64, error) {
	perStmt := maxBindParameters / len(columns)
	if len(rows) <= perStmt {
		tag, err := db.Exec(ctx, valuesSQL(table, columns, len(rows)), flatten(rows, len(columns))...)
		if err != nil {
			return 0, err
		}
		return tag.RowsAffected(), nil
	}
	b := &pgx.Batch{}
	for start := 0; start < len(rows); start += perStmt {
		chunk := rows[start:min(start+perStmt, len(rows))]
		b.Queue(valuesSQL(table, columns, len(chunk)), flatten(chunk, len(columns))...)
	}
	br := db.SendBatch(ctx, b)
	var total int64
	for range b.Len() {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return 0, err
		}
		total += tag.RowsAffected()
	}
	return total, br.Close()
}

// valuesSQL is INSERT INTO table (columns) VALUES ($1, …), … for n rows.
func valuesSQL(table pgx.Identifier, columns []string, n int) string {
	var sb strings.Builder
	sb.Grow(32 + 16*len(columns) + n*len(columns)*8)
	sb.WriteString("INSERT INTO ")
	sb.WriteString(table.Sanitize())
	sb.WriteString(" (")
	for i, c := range columns {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(pgx.Identifier{c}.Sanitize())
	}
	sb.WriteString(") VALUES ")
	p := 1
	for r := range n {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for c := range columns {
			if c > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(p))
			p++
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

func flatten(rows [][]any, width int) []any {
	args := make([]any, 0, len(rows)*width)
	for _, r := range rows {
		args = append(args, r...)
	}
	return args
}
