package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Bounds of the error history kept on an event.
const (
	// MaxProcessingErrors is how many errors an event keeps in
	// processing_errors; older ones are dropped.
	MaxProcessingErrors = 10
	// MaxErrorBytes is the longest error message kept, in bytes; longer ones
	// are cut (on a character boundary) and end with "…".
	MaxErrorBytes = 2048
)

// Jitter says how much of a retry delay is random.
type Jitter int

// The jitter modes.
const (
	// FullJitter draws the delay uniformly from [0, backoff): retries of events
	// that failed together spread out the most. The default.
	FullJitter Jitter = iota
	// EqualJitter draws it from [backoff/2, backoff).
	EqualJitter
	// NoJitter uses the backoff itself.
	NoJitter
)

// Defaults of RetryPolicy.
const (
	DefaultRetryBaseDelay   = time.Second
	DefaultRetryMaxDelay    = 10 * time.Minute
	DefaultRetryMaxAttempts = 10
)

// RetryPolicy schedules the next attempt of a failed event: after failed
// attempt n the backoff is min(MaxDelay, BaseDelay·2^(n-1)), to which the jitter
// applies; after failed attempt MaxAttempts the event is dead.
//
// With the defaults the backoffs are 1s, 2s, 4s, … 256s, and the tenth failure
// is final: an event that always fails is dead about 8.5 minutes after its
// first attempt (half that on average with full jitter).
type RetryPolicy struct {
	// BaseDelay is the backoff after the first failure. Defaults to 1 second.
	BaseDelay time.Duration
	// MaxDelay caps the backoff. Defaults to 10 minutes.
	MaxDelay time.Duration
	// MaxAttempts is the number of attempts an event gets; the failure of the
	// last makes it dead. Defaults to 10.
	MaxAttempts int
	// Jitter is how the delay is drawn from the backoff. Defaults to FullJitter.
	Jitter Jitter
	// Rand returns a number in [0, 1) for the jitter. Defaults to
	// math/rand/v2.Float64; set it for reproducible schedules (it is called
	// from one goroutine at a time per Fail call, but concurrent Fail calls
	// with the same policy call it concurrently).
	Rand func() float64
}

// WithDefaults returns p with its zero fields set to the defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	p.BaseDelay = cmp.Or(p.BaseDelay, DefaultRetryBaseDelay)
	p.MaxDelay = cmp.Or(p.MaxDelay, DefaultRetryMaxDelay)
	p.MaxAttempts = cmp.Or(p.MaxAttempts, DefaultRetryMaxAttempts)
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Validate reports every invalid field of p (after WithDefaults).
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.BaseDelay < time.Microsecond {
		errs = append(errs, fmt.Errorf("retry policy: BaseDelay %v must be at least 1µs", p.BaseDelay))
	}
	if p.MaxDelay < p.BaseDelay {
		errs = append(errs, fmt.Errorf("retry policy: MaxDelay %v must not be less than BaseDelay %v", p.MaxDelay, p.BaseDelay))
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > 1000 {
		errs = append(errs, fmt.Errorf("retry policy: MaxAttempts %d must be between 1 and 1000", p.MaxAttempts))
	}
	if p.Jitter < FullJitter || p.Jitter > NoJitter {
		errs = append(errs, fmt.Errorf("retry policy: Jitter %d is not FullJitter, EqualJitter or NoJitter", p.Jitter))
	}
	return errors.Join(errs...)
}

// Backoff is the delay before jitter after failed attempt n (1-based):
// min(MaxDelay, BaseDelay·2^(n-1)), in whole microseconds.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	p = p.WithDefaults()
	d := p.MaxDelay
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 62 {
		if f := float64(p.BaseDelay) * math.Exp2(float64(attempt-1)); f < float64(p.MaxDelay) {
			d = time.Duration(f)
		}
	}
	return d.Truncate(time.Microsecond)
}

// Delay is the delay after failed attempt n with the jitter drawn as u in
// [0, 1): Backoff(n) scaled by the jitter fraction, rounded down to the
// microsecond. Fail computes the same in SQL.
func (p RetryPolicy) Delay(attempt int, u float64) time.Duration {
	us := math.Floor(float64(p.Backoff(attempt)/time.Microsecond) * p.fraction(u))
	return time.Duration(us) * time.Microsecond
}

// fraction is the share of the backoff used, for a draw u in [0, 1).
func (p RetryPolicy) fraction(u float64) float64 {
	switch p.Jitter {
	case NoJitter:
		return 1
	case EqualJitter:
		return 0.5 + u/2
	default:
		return u
	}
}

// Failure is an event whose attempt failed.
type Failure struct {
	ID uuid.UUID
	// Err is the error, appended to the event's processing_errors (cut to
	// MaxErrorBytes) and recorded in event_metrics.
	Err string
	// ProcessingTimeMS is how long the attempt took.
	ProcessingTimeMS float64
}

// FailResult is what Fail did to one event.
type FailResult struct {
	ID uuid.UUID
	// Attempt is the attempt that failed (the retry count after it).
	Attempt int
	// Dead is true when that was the last attempt allowed.
	Dead bool
	// Delay is how long until the event can be claimed again; 0 when dead.
	Delay time.Duration
	// NextAttemptAt is when it can be claimed again; for a dead event, when
	// its last attempt failed (it is not claimed again unless replayed).
	NextAttemptAt time.Time
}

// failSQL records failed attempts: the error appended (keeping the last
// MaxProcessingErrors), retry_count + 1, and either pending again after the
// jittered backoff ($5, one entry per retry count, in microseconds, times the
// event's jitter fraction) or dead after the last attempt; plus one
// event_metrics row per failure, all in one statement.
//
// A dead event's next_attempt_at becomes now(), the time of its last attempt.
// Retention keeps a dead event until the latest of created_at, claimed_at and
// next_attempt_at is older than the dead-event retention, and claimed_at is
// cleared here; the old next_attempt_at says only when the last attempt was
// due, which for an event that waited in a backlog or through an outage can be
// older than that retention already, and the event would go with the next
// retention run instead of staying for an operator to replay it.
//
// A dead event keeps the id of the claim whose attempt was its last (see
// DeadBy); an event pending again gives its claim up.
var failSQL = `
WITH failed AS (
    SELECT * FROM unnest($2::uuid[], $3::text[], $4::float8[], $6::float8[]) AS t(id, err, ms, frac)
), updated AS (
    UPDATE omnibridge.hook_events e
    SET retry_count = e.retry_count + 1,
        status = CASE WHEN e.retry_count + 1 >= $7 THEN 'dead' ELSE 'pending' END,
        next_attempt_at = CASE WHEN e.retry_count + 1 >= $7 THEN now()
            ELSE now() + floor(($5::float8[])[least(e.retry_count + 1, cardinality($5::float8[]))] * failed.frac)
                         * interval '1 microsecond' END,
        claimed_at = NULL,
        claim_id = CASE WHEN e.retry_count + 1 >= $7 THEN e.claim_id END,
        processing_errors = ` + appendErrorSQL("e", `to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            || ' attempt ' || (e.retry_count + 1) || ': ' || failed.err`) + `
    FROM failed
    WHERE e.id = failed.id AND e.status = 'processing' AND e.claim_id = $1
    RETURNING e.id, e.retry_count, e.status = 'dead' AS dead, e.next_attempt_at,
        CASE WHEN e.status = 'dead' THEN 0
             ELSE floor(($5::float8[])[least(e.retry_count, cardinality($5::float8[]))] * failed.frac)::bigint END AS delay_us,
        failed.err, failed.ms
), metrics AS (
    INSERT INTO omnibridge.event_metrics (event_id, processing_time_ms, kafka_publish_success, error_message)
    SELECT id, ms, false, err FROM updated
)
SELECT id, retry_count, dead, next_attempt_at, delay_us FROM updated`

// appendErrorSQL is processing_errors of the table alias with msg appended,
// keeping the last MaxProcessingErrors entries.
func appendErrorSQL(alias, msg string) string {
	return fmt.Sprintf(`(coalesce(%[1]s.processing_errors, '{}') || (%[2]s))`+
		`[greatest(coalesce(cardinality(%[1]s.processing_errors), 0) + 2 - %[3]d, 1):]`,
		alias, msg, MaxProcessingErrors)
}

// Fail records failed attempts of events held by claimID, in one transaction:
// each error is appended to the event's processing_errors (the last
// MaxProcessingErrors kept, each cut to MaxErrorBytes), its retry count goes up
// by one, and it becomes pending again with next_attempt_at = now + the
// policy's jittered backoff, or dead when the attempt was its last
// (policy.MaxAttempts), with next_attempt_at = now, from which its retention
// counts (RetentionPolicy.DeadEvents); an event_metrics row records each failure
// (kafka_publish_success false, the error, the processing time). A zero policy
// means the defaults.
//
// Events no longer held by claimID (their lease expired) are left alone and
// have no result; results come in no particular order. ADR-016 has no
// counterpart; DESIGN.md's WorkflowCoordinator needs it.
func (s *Store) Fail(ctx context.Context, claimID uuid.UUID, failures []Failure, policy RetryPolicy) ([]FailResult, error) {
	if len(failures) == 0 {
		return nil, nil
	}
	p := policy.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: fail: %w", err)
	}
	ids := make([]uuid.UUID, len(failures))
	msgs := make([]string, len(failures))
	ms := make([]float64, len(failures))
	frac := make([]float64, len(failures))
	for i, f := range failures {
		if err := checkProcessingTime(f.ProcessingTimeMS); err != nil {
			return nil, fmt.Errorf("store: fail %s: %w", f.ID, err)
		}
		ids[i], msgs[i], ms[i], frac[i] = f.ID, cleanErrorMessage(f.Err), f.ProcessingTimeMS, p.fraction(p.Rand())
	}
	// The backoff after each retry count, as SQL indexes it (1-based).
	schedule := make([]float64, min(p.MaxAttempts, 64))
	for n := range schedule {
		schedule[n] = float64(p.Backoff(n+1) / time.Microsecond)
	}
	rows, err := s.db.Query(ctx, failSQL, claimID, ids, msgs, ms, schedule, frac, p.MaxAttempts)
	if err != nil {
		return nil, fmt.Errorf("store: fail: %w", err)
	}
	var r FailResult
	var delayUS int64
	var out []FailResult
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Attempt, &r.Dead, &r.NextAttemptAt, &delayUS}, func() error {
		r.Delay = time.Duration(delayUS) * time.Microsecond
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: fail: %w", err)
	}
	return out, nil
}

// DeadBy returns the events of ids that are dead after an attempt under
// claimID: a dead event keeps the id of the claim whose failed attempt was its
// last. After a Fail whose reply was lost (it may have committed all the
// same), a retry that sees fewer events than it was given can tell the events
// its earlier try made dead from those whose lease had expired. Delay is 0 and
// NextAttemptAt the time of the last attempt, as Fail returns them.
func (s *Store) DeadBy(ctx context.Context, claimID uuid.UUID, ids []uuid.UUID) ([]FailResult, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, `
SELECT id, retry_count, next_attempt_at FROM omnibridge.hook_events
WHERE id = ANY ($2) AND claim_id = $1 AND status = 'dead'`, claimID, ids)
	if err != nil {
		return nil, fmt.Errorf("store: dead events of claim %s: %w", claimID, err)
	}
	r := FailResult{Dead: true}
	var out []FailResult
	if _, err := pgx.ForEachRow(rows, []any{&r.ID, &r.Attempt, &r.NextAttemptAt}, func() error {
		out = append(out, r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: dead events of claim %s: %w", claimID, err)
	}
	return out, nil
}

// cleanErrorMessage makes an error message storable as text: valid UTF-8,
// without NUL, at most MaxErrorBytes.
func cleanErrorMessage(msg string) string {
	if !utf8.ValidString(msg) {
		msg = strings.ToValidUTF8(msg, "\uFFFD")
	}
	if strings.IndexByte(msg, 0) >= 0 {
		msg = strings.ReplaceAll(msg, "\x00", "")
	}
	if msg == "" {
		return "(no error message)"
	}
	if len(msg) <= MaxErrorBytes {
		return msg
	}
	const ellipsis = "…"
	cut := MaxErrorBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ellipsis
}
