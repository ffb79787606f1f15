package bridge

import (
	"cmp"
	"slices"
	"sync"
)

// ConsumerStatus is a subscription's state for the detailed health body.
type ConsumerStatus struct {
	Name       string            `json:"name"`
	Group      string            `json:"group"`
	State      string            `json:"state"`
	LastError  string            `json:"last_error,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
}

// PartitionStatus is one assigned partition's delivery state.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the last offset this member committed, -1 for none yet.
	Committed int64 `json:"committed"`
	Queued    int   `json:"queued"`
	Paused    bool  `json:"paused"`
	// FailingAttempts counts the failed attempts of the record at the head
	// of the partition: non-zero means the partition is stuck behind it.
	FailingAttempts int `json:"failing_attempts"`
}

// Status reports the subscription's state.
func (c *Consumer) Status() ConsumerStatus {
	state, lastErr := c.state.get()
	st := ConsumerStatus{Name: c.cfg.Name, Group: c.cfg.Group, State: state, LastError: lastErr, Partitions: []PartitionStatus{}}
	c.workersMu.Lock()
	for _, w := range c.workers {
		st.Partitions = append(st.Partitions, w.status())
	}
	c.workersMu.Unlock()
	slices.SortFunc(st.Partitions, func(a, b PartitionStatus) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return st
}

// stateBox holds a status string behind a lock.
type stateBox struct {
	mu           sync.Mutex
	state, error string
}

func (s *stateBox) set(state, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state, s.error = state, err
}

// stopped marks the end, keeping the last error (why it failed to start).
func (s *stateBox) stopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = "stopped"
}

func (s *stateBox) get() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.error
}
