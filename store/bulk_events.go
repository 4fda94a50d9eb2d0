package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BulkResult is the outcome of BulkInsertEvents.
type BulkResult struct {
	// Inserted is the number of events stored.
	Inserted int
	// Duplicates is the number of events not stored because their delivery (or
	// their explicit id and creation time) was taken, before or earlier in the
	// same call.
	Duplicates int
	// Method is how the events were sent.
	Method BulkMethod
	// Results has one entry per event, in input order, as InsertEvents
	// returns them.
	Results []InsertResult
}

// maxUnnestRows bounds the events of one INSERT … FROM unnest statement when a
// large batch takes that path (explicit ids), to keep its arrays small.
const maxUnnestRows = 5000

// dedupDeliveriesSQL reserves the deliveries of a batch in key order and
// returns the event ids whose reservation succeeded.
const dedupDeliveriesSQL = `
INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
ORDER BY 1, 2
ON CONFLICT DO NOTHING
RETURNING event_id`

// BulkInsertEvents implements ADR-016's adaptive_bulk_insert for hook events
// with the default options: see BulkInsertEventsWith.
func (s *Store) BulkInsertEvents(ctx context.Context, events []NewEvent) (BulkResult, error) {
	return s.BulkInsertEventsWith(ctx, BulkOptions{}, events)
}

// BulkInsertEventsWith implements ADR-016's adaptive_bulk_insert for hook
// events, deduplicated as InsertEvents does it. Below
// opts.EventsCopyThreshold events it sends InsertEvents' single statement
// (and, like InsertEvents, reports events stored before a failed duplicate
// lookup with a *PartialInsertError); from it, in one transaction, it
// reserves the deliveries with one INSERT … ON CONFLICT DO NOTHING and COPYs
// the events whose reservation succeeded (and those without a delivery id)
// straight into hook_events. The textbook alternative,
// COPY into a temporary table and then INSERT … SELECT … ON CONFLICT,
// measured no faster from 1000 to 10000 events and half as fast at 100 (it
// creates and drops a table per call; see BenchmarkBulkInsertEvents).
// Batches with explicit ids (imports) always take the INSERT path, in chunks
// within one transaction, because an (id, created_at) stored before must
// count as a duplicate, not fail the COPY.
//
// Validation comes first: one bad event rejects the whole call with a
// *ValidationError naming its index, and nothing is written.
func (s *Store) BulkInsertEventsWith(ctx context.Context, opts BulkOptions, events []NewEvent) (BulkResult, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return BulkResult{}, fmt.Errorf("store: bulk insert events: %w", err)
	}
	if err := validateEvents(events); err != nil {
		return BulkResult{}, err
	}
	return s.bulkInsertValidEvents(ctx, opts, events)
}

// bulkInsertValidEvents is BulkInsertEventsWith for validated events.
func (s *Store) bulkInsertValidEvents(ctx context.Context, opts BulkOptions, events []NewEvent) (BulkResult, error) {
	if len(events) == 0 {
		return BulkResult{Method: opts.EventsMethod(0)}, nil
	}
	res := make([]InsertResult, len(events))
	cols, dupOf, err := prepareBatch(events, res)
	if err != nil {
		return BulkResult{}, err
	}
	out := BulkResult{Method: opts.EventsMethod(len(events))}
	switch {
	case out.Method == BulkValues:
		// InsertEvents' statements, which commit one by one.
		done := make([]bool, len(events))
		if err = insertColumns(ctx, s.db, events, cols, res, done); err != nil {
			err = partialInsert(res, done, dupOf, err)
		}
	case cols.explicitIDs:
		out.Method = BulkValues
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			resetResults(cols, res) // a retried transaction starts over
			for lo := 0; lo < cols.len(); lo += maxUnnestRows {
				if err := insertColumns(ctx, tx, events, cols.slice(lo, min(lo+maxUnnestRows, cols.len())), res, nil); err != nil {
					return err
				}
			}
			return nil
		})
	default:
		err = s.inTx(ctx, func(tx pgx.Tx) error { return copyEvents(ctx, tx, events, cols, res) })
	}
	if err != nil {
		return BulkResult{}, err
	}
	resolveBatchDuplicates(res, dupOf)
	out.Results = res
	for _, r := range res {
		if r.Duplicate {
			out.Duplicates++
		} else {
			out.Inserted++
		}
	}
	return out, nil
}

// copyEvents reserves the deliveries of cols, resolves the duplicates, and
// COPYs the other events into hook_events. It may run more than once (a
// retried transaction), so it sets every result it owns.
func copyEvents(ctx context.Context, tx pgx.Tx, events []NewEvent, cols *eventColumns, res []InsertResult) error {
	resetResults(cols, res)
	var sources, deliveries []string
	var deliveryIDs []uuid.UUID
	for j, d := range cols.deliveries {
		if d != "" {
			sources = append(sources, cols.sources[j])
			deliveries = append(deliveries, d)
			deliveryIDs = append(deliveryIDs, cols.ids[j])
		}
	}
	// keep[j] says whether cols row j is copied.
	keep := make([]bool, cols.len())
	for j := range keep {
		keep[j] = cols.deliveries[j] == ""
	}
	if len(sources) > 0 {
		rows, err := tx.Query(ctx, dedupDeliveriesSQL, sources, deliveries, deliveryIDs)
		if err != nil {
			return fmt.Errorf("store: bulk insert events: reserve deliveries: %w", err)
		}
		reserved, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return fmt.Errorf("store: bulk insert events: reserve deliveries: %w", err)
		}
		fresh := make(map[uuid.UUID]struct{}, len(reserved))
		for _, id := range reserved {
			fresh[id] = struct{}{}
		}
		var taken []int
		for j, id := range cols.ids {
			if cols.deliveries[j] == "" {
				continue
			}
			if _, ok := fresh[id]; ok {
				keep[j] = true
			} else {
				taken = append(taken, cols.pos[j])
			}
		}
		if len(taken) > 0 {
			retry, err := resolveDuplicates(ctx, tx, events, taken, res)
			if err != nil {
				return err
			}
			if retry.len() > 0 {
				// A delivery vanished between the conflict and the lookup: take
				// the slow path for those few.
				if err := insertColumns(ctx, tx, events, retry, res, nil); err != nil {
					return err
				}
			}
		}
	}
	return copyKept(ctx, tx, cols, keep)
}

// resetResults sets the result of every event of cols to "inserted".
func resetResults(cols *eventColumns, res []InsertResult) {
	for j, i := range cols.pos {
		res[i] = InsertResult{ID: cols.ids[j]}
	}
}

// copyKept COPYs the rows of cols that keep marks.
func copyKept(ctx context.Context, tx pgx.Tx, cols *eventColumns, keep []bool) error {
	columns := []string{"id", "source", "action", "resource", "resource_id", "payload", "metadata", "delivery_id"}
	var now time.Time
	if cols.withCreatedAt {
		// Events without a CreatedAt get the transaction's now(), as the
		// column default would give them.
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return fmt.Errorf("store: bulk insert events: %w", err)
		}
		columns = append(columns, "created_at")
	}
	empty := json.RawMessage(`{}`)
	row := make([]any, len(columns))
	j := -1
	next := func() bool {
		for j++; j < len(keep); j++ {
			if keep[j] {
				return true
			}
		}
		return false
	}
	src := copyFunc{next: next, values: func() []any {
		row[0], row[1], row[2], row[3], row[4] = cols.ids[j], cols.sources[j], cols.actions[j], cols.resources[j], cols.resIDs[j]
		row[5] = cols.payloads[j]
		if md := cols.metadata[j]; md != nil {
			row[6] = md
		} else {
			row[6] = empty
		}
		if d := cols.deliveries[j]; d != "" {
			row[7] = d
		} else {
			row[7] = nil
		}
		if cols.withCreatedAt {
			if t := cols.createdAt[j]; t != nil {
				row[8] = *t
			} else {
				row[8] = now
			}
		}
		return row
	}}
	if _, err := tx.CopyFrom(ctx, eventsTable, columns, &src); err != nil {
		return fmt.Errorf("store: bulk insert events: copy: %w", err)
	}
	return nil
}

// copyFunc adapts an iterator to pgx.CopyFromSource without materialising the
// rows: pgx encodes each row before asking for the next, so one row buffer
// serves them all.
type copyFunc struct {
	next   func() bool
	values func() []any
}

func (c *copyFunc) Next() bool             { return c.next() }
func (c *copyFunc) Values() ([]any, error) { return c.values(), nil }
func (c *copyFunc) Err() error             { return nil }
