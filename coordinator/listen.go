package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnibridge/omnibridge/store"
)

// Deadlines of the LISTEN connection.
const (
	// listenConnectTimeout bounds opening the connection and running LISTEN.
	listenConnectTimeout = 10 * time.Second
	// defaultListenIdleCheck is how long the connection may stay silent
	// before it is pinged, so that a connection that died without a word (a
	// dropped network path) is noticed and replaced.
	defaultListenIdleCheck = 30 * time.Second
	// listenPingTimeout bounds that ping.
	listenPingTimeout = 5 * time.Second
)

// listenLoop keeps a LISTEN connection open on store.NotifyChannel and wakes
// the claimer on each notification, reconnecting with backoff when the
// connection drops. Polling goes on throughout, so a lost connection only
// delays delivery up to PollInterval. Without Deps.Listen it returns at once.
func (c *Coordinator) listenLoop(ctx context.Context) {
	if c.listen == nil {
		return
	}
	bo := newBackoff(c.cfg.ListenBackoff)
	for {
		err := c.listenOnce(ctx, bo.Reset)
		c.m.listening.Set(0)
		if ctx.Err() != nil {
			return
		}
		d := bo.NextBackOff()
		c.log.Warn("coordinator: LISTEN connection lost; polling every poll_interval until it is back",
			"err", err, "reconnect_in", d, "poll_interval", c.cfg.PollInterval)
		if !sleep(ctx, d) {
			return
		}
	}
}

// listenOnce opens a connection, LISTENs and waits for notifications until
// the connection fails (returning why) or ctx ends (returning nil). It calls
// connected once LISTEN is in place.
func (c *Coordinator) listenOnce(ctx context.Context, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, listenConnectTimeout)
	defer cancel()
	conn, err := c.listen(cctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenPingTimeout)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{store.NotifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN %s: %w", store.NotifyChannel, err)
	}
	cancel()
	connected()
	c.m.listening.Set(1)
	c.log.Info("coordinator: listening for new events", "channel", store.NotifyChannel)
	// Events may have arrived while the connection was down.
	c.poke()

	for {
		wctx, cancel := context.WithTimeout(ctx, c.listenIdleCheck)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			c.poke()
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ping after %s without notifications: %w", c.listenIdleCheck, err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}
