package pgclient_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/omnibridge/omnibridge/internal/testdb"
)

func TestMain(m *testing.M) {
	// toxiproxy (embedded for the network fault tests) leaves a link's
	// goroutines blocked on a channel send when a toxic such as limit_data
	// or timeout ends the link while data is in flight, even after the proxy
	// is stopped; they are toxiproxy's, not the client's.
	testdb.Main(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
	)
}
