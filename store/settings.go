package store

import (
	"context"
	"fmt"
)

// SynchronousCommit returns the session's synchronous_commit setting. A value
// of "off" means a commit may be acknowledged before it is flushed, so an
// acknowledged write can be lost if PostgreSQL crashes.
func (s *Store) SynchronousCommit(ctx context.Context) (string, error) {
	var setting string
	if err := s.db.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&setting); err != nil {
		return "", fmt.Errorf("store: read synchronous_commit: %w", err)
	}
	return setting, nil
}
