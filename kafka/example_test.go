package kafka_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/omnibridge/omnibridge/kafka"
)

// Publish a batch to the in-process broker and read it back, as `omnibridge
// dev` and the tests do. Against a real cluster only the Config differs.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	broker, err := kafka.StartBroker()
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	producer, err := kafka.NewProducer(ctx, broker.Config(), nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()

	errs := producer.Publish(ctx, []kafka.Message{
		{Key: []byte("repo-1"), Value: []byte(`{"action":"opened"}`), Headers: []kafka.Header{{Key: "event-id", Value: []byte("e1")}}},
		{Key: []byte("repo-1"), Value: []byte(`{"action":"closed"}`), Headers: []kafka.Header{{Key: "event-id", Value: []byte("e2")}}},
	})
	for i, err := range errs {
		switch {
		case err == nil:
			// acknowledged by all in-sync replicas
		case kafka.IsBrokerWide(err):
			log.Printf("message %d: cluster unavailable, back off: %v", i, err)
		default:
			log.Printf("message %d: refused: %v", i, err)
		}
	}

	records, err := kafka.ReadAll(ctx, broker.Config(), 2)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range records {
		fmt.Printf("%s %s %s=%s\n", r.Key, r.Value, r.Headers[0].Key, r.Headers[0].Value)
	}
	// Output:
	// repo-1 {"action":"opened"} event-id=e1
	// repo-1 {"action":"closed"} event-id=e2
}
