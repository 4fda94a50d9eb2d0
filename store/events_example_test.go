package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/omnibridge/omnibridge/store"
)

// A webhook is stored once however often its sender delivers it.
func ExampleStore_InsertEvent() {
	ctx := context.Background()
	var s *store.Store // store.New(client)

	id, duplicate, err := s.InsertEvent(ctx, store.NewEvent{
		Source: "github", Action: "push", Resource: "repository", ResourceID: "omnibridge/omnibridge",
		DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		Payload:    json.RawMessage(`{"ref":"refs/heads/main"}`),
	})
	var invalid *store.ValidationError
	switch {
	case errors.As(err, &invalid):
		fmt.Println("400:", invalid.Code, invalid.Field) // nothing was written
	case err != nil:
		fmt.Println("503:", err)
	case duplicate:
		fmt.Println("200: already stored as", id)
	default:
		fmt.Println("202: stored as", id)
	}
}

// The coordinator's loop: claim what is due, publish, then complete or fail.
func ExampleStore_Claim() {
	ctx := context.Background()
	var s *store.Store // store.New(client)
	publish := func(store.HookEvent) error { return nil }
	policy := store.RetryPolicy{} // 1s, 2s, 4s … capped at 10m, dead after 10 attempts

	events, claimID, err := s.Claim(ctx, 100)
	if err != nil {
		return
	}
	var done []store.Completion
	var failed []store.Failure
	for _, e := range events {
		start := time.Now()
		ms := func() float64 { return float64(time.Since(start).Microseconds()) / 1000 }
		if err := publish(e); err != nil {
			failed = append(failed, store.Failure{ID: e.ID, Err: err.Error(), ProcessingTimeMS: ms()})
			continue
		}
		done = append(done, store.Completion{ID: e.ID, CreatedAt: e.CreatedAt, ProcessingTimeMS: ms()})
	}
	if _, err := s.Complete(ctx, claimID, done); err != nil {
		return
	}
	_, _ = s.Fail(ctx, claimID, failed, policy)
}
