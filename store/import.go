package store

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Defaults of ImportOptions.
const (
	DefaultImportBatchSize    = 5000
	MaxImportBatchSize        = 100_000
	DefaultImportMaxLineBytes = 2 << 20
	DefaultImportMaxRejected  = 1000
)

// ImportOptions tunes ImportNDJSON.
type ImportOptions struct {
	// BatchSize is the number of events per bulk insert (and transaction),
	// held in memory together; at most MaxImportBatchSize. Defaults to
	// DefaultImportBatchSize.
	BatchSize int
	// MaxLineBytes is the longest line accepted, newline excluded; a longer
	// line is rejected and skipped without being held in memory. Defaults to
	// DefaultImportMaxLineBytes (2 MiB).
	MaxLineBytes int
	// MaxRejected is how many rejected lines ImportSummary.Rejected keeps (all
	// are counted in RejectedCount). Defaults to DefaultImportMaxRejected.
	MaxRejected int
	// Progress, when set, is called after each batch is stored with the number
	// of input bytes read so far (compare it with the file size).
	Progress func(done int64)
	// Bulk tunes the bulk inserts. Defaults to BulkOptions{}.
	Bulk BulkOptions
}

// WithDefaults returns o with zero fields set to their defaults.
func (o ImportOptions) WithDefaults() ImportOptions {
	o.BatchSize = cmp.Or(o.BatchSize, DefaultImportBatchSize)
	o.MaxLineBytes = cmp.Or(o.MaxLineBytes, DefaultImportMaxLineBytes)
	o.MaxRejected = cmp.Or(o.MaxRejected, DefaultImportMaxRejected)
	o.Bulk = o.Bulk.WithDefaults()
	return o
}

// Validate reports every invalid field of o (after WithDefaults).
func (o ImportOptions) Validate() error {
	var errs []error
	if o.BatchSize < 1 || o.BatchSize > MaxImportBatchSize {
		errs = append(errs, fmt.Errorf("import options: BatchSize %d must be between 1 and %d", o.BatchSize, MaxImportBatchSize))
	}
	if o.MaxLineBytes < 64 || o.MaxLineBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("import options: MaxLineBytes %d must be between 64 and 1 GiB", o.MaxLineBytes))
	}
	if o.MaxRejected < 0 {
		errs = append(errs, fmt.Errorf("import options: MaxRejected %d must not be negative", o.MaxRejected))
	}
	if err := o.Bulk.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// LineError is a rejected input line.
type LineError struct {
	// Line is the 1-based line number.
	Line int
	// Err says why; a *ValidationError for a bad event.
	Err error
}

func (e LineError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e LineError) Unwrap() error { return e.Err }

// ImportSummary is what ImportNDJSON did.
type ImportSummary struct {
	// Lines is the number of lines read, blank ones included.
	Lines int
	// Imported is the number of events stored.
	Imported int
	// Duplicates is the number of events skipped as already stored (their
	// delivery, or their explicit id and creation time).
	Duplicates int
	// RejectedCount is the number of lines rejected.
	RejectedCount int
	// Rejected holds the first ImportOptions.MaxRejected of them, in input
	// order.
	Rejected []LineError
}

// ImportNDJSON loads events from r, one JSON object per line in the generic
// envelope — source, action, resource, resource_id, payload, and optionally
// metadata, delivery_id, id and created_at (RFC 3339); other keys are ignored
// — through the adaptive bulk insert with deduplication, opts.BatchSize
// events per transaction. Blank lines are skipped.
//
// A bad line (not JSON, a bad event, longer than opts.MaxLineBytes) is
// reported with its line number and skipped; the other lines are imported.
// Importing a file again stores nothing twice for events with a delivery id
// or an explicit id; events with neither are stored again.
//
// It returns an error, with the summary so far, when reading r or storing a
// batch fails; the batches stored before stay stored, and so do the events of
// the failing batch that the summary counts (see PartialInsertError): the
// summary counts exactly the events stored.
func (s *Store) ImportNDJSON(ctx context.Context, r io.Reader, opts ImportOptions) (ImportSummary, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return ImportSummary{}, fmt.Errorf("store: import: %w", err)
	}
	var sum ImportSummary
	reject := func(line int, err error) {
		sum.RejectedCount++
		if len(sum.Rejected) < opts.MaxRejected {
			sum.Rejected = append(sum.Rejected, LineError{Line: line, Err: err})
		}
	}
	br := bufio.NewReaderSize(r, opts.MaxLineBytes+2)
	var done int64
	batch := make([]NewEvent, 0, opts.BatchSize)
	flush := func() error {
		if len(batch) > 0 {
			res, err := s.bulkInsertValidEvents(ctx, opts.Bulk, batch)
			if err != nil {
				// Events of the batch may be stored all the same: count
				// them, so that the summary says what is stored.
				if pe, ok := errors.AsType[*PartialInsertError](err); ok {
					for i, done := range pe.Done {
						switch {
						case !done:
						case pe.Results[i].Duplicate:
							sum.Duplicates++
						default:
							sum.Imported++
						}
					}
				}
				return fmt.Errorf("store: import: batch ending at line %d: %w", sum.Lines, err)
			}
			sum.Imported += res.Inserted
			sum.Duplicates += res.Duplicates
			clear(batch)
			batch = batch[:0]
		}
		if opts.Progress != nil {
			opts.Progress(done)
		}
		return nil
	}

	for {
		line, n, tooLong, err := readLine(br, opts.MaxLineBytes)
		done += int64(n)
		if n > 0 {
			sum.Lines++
			switch {
			case tooLong:
				reject(sum.Lines, &ValidationError{Index: -1, Field: "line", Code: CodeTooLarge,
					Reason: fmt.Sprintf("line longer than %d bytes", opts.MaxLineBytes)})
			case len(bytes.TrimSpace(line)) == 0:
			default:
				e, verr := parseEnvelope(bytes.Clone(line))
				if verr == nil {
					verr = e.validate()
				}
				if verr != nil {
					verr.Index = -1
					reject(sum.Lines, verr)
				} else {
					batch = append(batch, e)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return sum, fmt.Errorf("store: import: read line %d: %w", sum.Lines+1, err)
			}
			return sum, flush()
		}
		if len(batch) == opts.BatchSize {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
}

// readLine reads the next line of br without its line ending. n is the number
// of bytes consumed (0 only at the end of input); a line longer than max is
// consumed without being kept, and tooLong set.
func readLine(br *bufio.Reader, max int) (line []byte, n int, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	n = len(line)
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		var more []byte
		more, err = br.ReadSlice('\n')
		n += len(more)
	}
	if tooLong {
		return nil, n, true, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > max {
		return nil, n, true, err
	}
	return line, n, false, err
}
