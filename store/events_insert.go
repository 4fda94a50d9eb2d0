package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// insertEventsSQL stores a batch given as arrays, one per column. The
// deliveries are inserted first, in key order (so that concurrent batches take
// the key locks in one order and cannot deadlock); an event with a delivery id
// is inserted only when its delivery row was. It returns the (1-based) input
// positions of the events that were not inserted: the duplicates.
//
// ON CONFLICT DO NOTHING rather than DO UPDATE keeps the receiver's grants to
// INSERT and SELECT; the ids of the first events are read by a second
// statement, which (in READ COMMITTED) sees deliveries that concurrent
// transactions committed while this one waited on them.
const insertEventsSQL = `
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::jsonb[], $7::jsonb[], $8::text[])
        WITH ORDINALITY AS t(id, source, action, resource, resource_id, payload, metadata, delivery_id, n)
), delivery AS (
    INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
    SELECT source, delivery_id, id FROM input WHERE delivery_id <> ''
    ORDER BY source, delivery_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
), event AS (
    INSERT INTO omnibridge.hook_events
        (id, source, action, resource, resource_id, payload, metadata, delivery_id)
    SELECT id, source, action, resource, resource_id, payload, coalesce(metadata, '{}'),
           NULLIF(delivery_id, '')
    FROM input
    WHERE delivery_id = '' OR id IN (SELECT event_id FROM delivery)
    RETURNING id
)
SELECT n FROM input WHERE id NOT IN (SELECT id FROM event)`

// insertEventsExplicitSQL is insertEventsSQL for batches with explicit ids and
// creation times (imports): an (id, created_at) that exists already is a
// duplicate too.
const insertEventsExplicitSQL = `
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::jsonb[], $7::jsonb[], $8::text[], $9::timestamptz[])
        WITH ORDINALITY AS t(id, source, action, resource, resource_id, payload, metadata, delivery_id,
                             created_at, n)
), delivery AS (
    INSERT INTO omnibridge.hook_event_deliveries (source, delivery_id, event_id)
    SELECT source, delivery_id, id FROM input WHERE delivery_id <> ''
    ORDER BY source, delivery_id
    ON CONFLICT DO NOTHING
    RETURNING event_id
), event AS (
    INSERT INTO omnibridge.hook_events
        (id, source, action, resource, resource_id, payload, metadata, delivery_id, created_at)
    SELECT id, source, action, resource, resource_id, payload, coalesce(metadata, '{}'),
           NULLIF(delivery_id, ''), coalesce(created_at, now())
    FROM input
    WHERE delivery_id = '' OR id IN (SELECT event_id FROM delivery)
    ORDER BY id
    ON CONFLICT DO NOTHING
    RETURNING id
)
SELECT n FROM input WHERE id NOT IN (SELECT id FROM event)`

// lookupDeliveriesSQL returns the event ids of deliveries.
const lookupDeliveriesSQL = `
SELECT d.source, d.delivery_id, d.event_id
FROM omnibridge.hook_event_deliveries d
JOIN unnest($1::text[], $2::text[]) AS k(source, delivery_id)
  ON d.source = k.source AND d.delivery_id = k.delivery_id`

type deliveryKey struct{ source, deliveryID string }

type explicitKey struct {
	id        uuid.UUID
	createdAt time.Time
}

// eventColumns holds a batch as one slice per column, the shape unnest takes.
type eventColumns struct {
	pos        []int      // index in the caller's batch
	ids        [][16]byte // uuid.UUID is sent as text (driver.Valuer); [16]byte in binary
	sources    []string
	actions    []string
	resources  []string
	resIDs     []string
	payloads   []json.RawMessage
	metadata   []json.RawMessage
	deliveries []string
	createdAt  []*time.Time
	// withCreatedAt says that some event has a CreatedAt, so createdAt is
	// sent (nil entries mean now()).
	withCreatedAt bool
	// explicitIDs says that some event came with its own ID.
	explicitIDs bool
}

func newEventColumns(n int) *eventColumns {
	return &eventColumns{
		pos: make([]int, 0, n), ids: make([][16]byte, 0, n),
		sources: make([]string, 0, n), actions: make([]string, 0, n),
		resources: make([]string, 0, n), resIDs: make([]string, 0, n),
		payloads: make([]json.RawMessage, 0, n), metadata: make([]json.RawMessage, 0, n),
		deliveries: make([]string, 0, n),
	}
}

func (c *eventColumns) add(pos int, id uuid.UUID, e *NewEvent) {
	c.pos = append(c.pos, pos)
	c.ids = append(c.ids, [16]byte(id))
	c.sources = append(c.sources, e.Source)
	c.actions = append(c.actions, e.Action)
	c.resources = append(c.resources, e.Resource)
	c.resIDs = append(c.resIDs, e.ResourceID)
	c.payloads = append(c.payloads, e.Payload)
	var md json.RawMessage
	if len(e.Metadata) > 0 {
		md = e.Metadata
	}
	c.metadata = append(c.metadata, md)
	c.deliveries = append(c.deliveries, e.DeliveryID)
	c.explicitIDs = c.explicitIDs || e.ID != uuid.Nil
	if !e.CreatedAt.IsZero() && !c.withCreatedAt {
		c.withCreatedAt = true
		c.createdAt = make([]*time.Time, len(c.pos)-1, cap(c.pos))
	}
	if c.withCreatedAt {
		c.createdAt = append(c.createdAt, timeArg(e.CreatedAt))
	}
}

func (c *eventColumns) len() int { return len(c.pos) }

// slice returns rows [lo, hi) of c, sharing its arrays.
func (c *eventColumns) slice(lo, hi int) *eventColumns {
	out := &eventColumns{
		pos: c.pos[lo:hi], ids: c.ids[lo:hi], sources: c.sources[lo:hi], actions: c.actions[lo:hi],
		resources: c.resources[lo:hi], resIDs: c.resIDs[lo:hi], payloads: c.payloads[lo:hi],
		metadata: c.metadata[lo:hi], deliveries: c.deliveries[lo:hi],
		withCreatedAt: c.withCreatedAt, explicitIDs: c.explicitIDs,
	}
	if c.withCreatedAt {
		out.createdAt = c.createdAt[lo:hi]
	}
	return out
}

func (c *eventColumns) args() (string, []any) {
	args := []any{c.ids, c.sources, c.actions, c.resources, c.resIDs, c.payloads, c.metadata, c.deliveries}
	if c.withCreatedAt || c.explicitIDs {
		return insertEventsExplicitSQL, append(args, c.createdAt)
	}
	return insertEventsSQL, args
}

// insertEvents stores validated events and fills res (len(res) == len(events)).
// Its statements commit one by one, so an error after the first one returns a
// *PartialInsertError when some events are stored.
func (s *Store) insertEvents(ctx context.Context, events []NewEvent, res []InsertResult) error {
	cols, dupOf, err := prepareBatch(events, res)
	if err != nil {
		return err
	}
	done := make([]bool, len(events))
	if err := insertColumns(ctx, s.db, events, cols, res, done); err != nil {
		return partialInsert(res, done, dupOf, err)
	}
	resolveBatchDuplicates(res, dupOf)
	return nil
}

// PartialInsertError is InsertEvents' error when it failed after some of the
// events were committed. A batch with duplicates of earlier deliveries takes a
// second statement, to look up the first events' ids, and the insert before
// it has committed by then; a failure of that lookup (or of a later round, see
// insertColumns) leaves those events stored. Done[i] says that events[i] has
// its final result in Results[i] (stored, or a duplicate of a stored event);
// the others were not stored by this call, and may be sent again.
type PartialInsertError struct {
	Results []InsertResult
	Done    []bool
	Err     error
}

func (e *PartialInsertError) Error() string {
	n := 0
	for _, d := range e.Done {
		if d {
			n++
		}
	}
	return fmt.Sprintf("%v (%d of %d events were stored or found to be duplicates before the failure)", e.Err, n, len(e.Done))
}

func (e *PartialInsertError) Unwrap() error { return e.Err }

// partialInsert returns err, or a *PartialInsertError when some events are
// done: those insertColumns finished, and the repeats within the batch of
// finished ones.
func partialInsert(res []InsertResult, done []bool, dupOf []int, err error) error {
	for i, first := range dupOf {
		if first >= 0 && done[first] {
			res[i] = InsertResult{ID: res[first].ID, Duplicate: true}
			done[i] = true
		}
	}
	if !slices.Contains(done, true) {
		return err
	}
	return &PartialInsertError{Results: res, Done: done, Err: err}
}

// prepareBatch gives each event its id (in res) and sets aside the events
// that repeat an earlier one of the batch (same source and delivery id, or
// same explicit id and creation time): dupOf[i] is the index of the event
// that event i repeats, or -1; dupOf is nil when nothing repeats. The others
// are returned as columns.
func prepareBatch(events []NewEvent, res []InsertResult) (*eventColumns, []int, error) {
	cols := newEventColumns(len(events))
	var dupOf []int
	var seenDelivery map[deliveryKey]int
	var seenExplicit map[explicitKey]int
	markDup := func(i, first int) {
		if dupOf == nil {
			dupOf = make([]int, len(events))
			for j := range dupOf {
				dupOf[j] = -1
			}
		}
		dupOf[i] = first
	}
	for i := range events {
		e := &events[i]
		if e.DeliveryID != "" {
			k := deliveryKey{e.Source, e.DeliveryID}
			if seenDelivery == nil {
				seenDelivery = make(map[deliveryKey]int)
			}
			if first, ok := seenDelivery[k]; ok {
				markDup(i, first)
				continue
			}
			seenDelivery[k] = i
		}
		id := e.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, nil, fmt.Errorf("store: new event id: %w", err)
			}
		} else {
			k := explicitKey{id, e.CreatedAt}
			if seenExplicit == nil {
				seenExplicit = make(map[explicitKey]int)
			}
			if first, ok := seenExplicit[k]; ok {
				markDup(i, first)
				continue
			}
			seenExplicit[k] = i
		}
		res[i] = InsertResult{ID: id}
		cols.add(i, id, e)
	}
	return cols, dupOf, nil
}

// resolveBatchDuplicates gives the events that repeat an earlier event of the
// batch that event's id.
func resolveBatchDuplicates(res []InsertResult, dupOf []int) {
	for i, first := range dupOf {
		if first >= 0 {
			res[i] = InsertResult{ID: res[first].ID, Duplicate: true}
		}
	}
}

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// insertColumns runs the insert for cols and resolves its duplicates: an event
// whose delivery was taken gets the first event's id. A delivery removed (by
// retention) between the conflict and the lookup is inserted again. When done
// is not nil (q is not a transaction, so each statement commits on its own),
// done[i] is set once event i is stored or known to be a duplicate.
func insertColumns(ctx context.Context, q queryer, events []NewEvent, cols *eventColumns, res []InsertResult, done []bool) error {
	for range maxDedupRounds {
		if cols.len() == 0 {
			return nil
		}
		sql, args := cols.args()
		rows, err := q.Query(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("store: insert events: %w", err)
		}
		notInserted, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("store: insert events: %w", err)
		}
		pos := make([]int, len(notInserted))
		for j, n := range notInserted {
			pos[j] = cols.pos[n-1]
		}
		setDone(done, cols.pos, true)
		setDone(done, pos, false)
		retry, err := resolveDuplicates(ctx, q, events, pos, res)
		if err != nil {
			return err
		}
		setDone(done, pos, true)
		if retry.len() == 0 {
			return nil
		}
		setDone(done, retry.pos, false)
		cols = retry
	}
	return fmt.Errorf("store: insert events: deliveries kept disappearing between insert and lookup (is retention deleting fresh deliveries?)")
}

// resolveDuplicates handles the events at positions pos that were not
// inserted: each is a duplicate, of the event that holds its delivery (looked
// up) or, without a delivery id, of the event with its explicit id. Events
// whose delivery is gone by the time of the lookup are returned for another
// try.
func resolveDuplicates(ctx context.Context, q queryer, events []NewEvent, pos []int, res []InsertResult) (*eventColumns, error) {
	retry := newEventColumns(0)
	var keySources, keyDeliveries []string
	for _, i := range pos {
		res[i].Duplicate = true
		if d := events[i].DeliveryID; d != "" {
			keySources = append(keySources, events[i].Source)
			keyDeliveries = append(keyDeliveries, d)
		}
	}
	if len(keySources) == 0 {
		return retry, nil
	}
	found, err := lookupDeliveries(ctx, q, keySources, keyDeliveries)
	if err != nil {
		return nil, err
	}
	for _, i := range pos {
		e := &events[i]
		if e.DeliveryID == "" {
			continue
		}
		if id, ok := found[deliveryKey{e.Source, e.DeliveryID}]; ok {
			res[i].ID = id
			continue
		}
		res[i].Duplicate = false
		retry.add(i, res[i].ID, e)
	}
	return retry, nil
}

// setDone marks the events at positions pos in done, when done is tracked.
func setDone(done []bool, pos []int, v bool) {
	if done == nil {
		return
	}
	for _, i := range pos {
		done[i] = v
	}
}

// maxDedupRounds bounds the retries of insertColumns.
const maxDedupRounds = 3

func lookupDeliveries(ctx context.Context, q queryer, sources, deliveries []string) (map[deliveryKey]uuid.UUID, error) {
	rows, err := q.Query(ctx, lookupDeliveriesSQL, sources, deliveries)
	if err != nil {
		return nil, fmt.Errorf("store: look up deliveries: %w", err)
	}
	found := make(map[deliveryKey]uuid.UUID, len(sources))
	var k deliveryKey
	var id uuid.UUID
	_, err = pgx.ForEachRow(rows, []any{&k.source, &k.deliveryID, &id}, func() error {
		found[k] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: look up deliveries: %w", err)
	}
	return found, nil
}

// timeArg is nil (SQL NULL) for the zero time.
func timeArg(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
