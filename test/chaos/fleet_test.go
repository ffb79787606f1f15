package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// fleet is the kbridge instances of the run: all one consumer group, all
// delivering to the one webhook. The publisher picks a live instance per
// call; the disturber takes instances out (kill, SIGTERM) and starts new
// ones.
type fleet struct {
	bin, config, logDir string
	// unexpected is told when an instance exits without being signalled.
	unexpected func(msg string)

	mu      sync.Mutex
	live    []*instance
	all     []*instance // every instance started, live or not
	started int
}

// start runs one more instance and adds it to the live ones.
func (f *fleet) start() (*instance, error) {
	f.mu.Lock()
	f.started++
	name := fmt.Sprintf("kb%d", f.started)
	f.mu.Unlock()
	inst, err := startInstance(f.bin, f.config, f.logDir, name)
	if err != nil {
		return nil, err
	}
	go func() { // ends with the process
		<-inst.exited
		if !inst.stopping.Load() {
			f.unexpected(fmt.Sprintf("%s exited on its own: %v\n%s", inst.name, inst.exitErr, tail(inst.logPath, 10)))
		}
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = append(f.live, inst)
	f.all = append(f.all, inst)
	return inst, nil
}

// pick returns a random live instance, or nil if none is.
func (f *fleet) pick(rng *rand.Rand) *instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.live) == 0 {
		return nil
	}
	return f.live[rng.IntN(len(f.live))]
}

// drop removes inst from the live instances, once it is gone: until then
// the publisher keeps calling it, so calls in flight meet the kill or the
// shutdown.
func (f *fleet) drop(inst *instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = slices.DeleteFunc(f.live, func(i *instance) bool { return i == inst })
}

func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

// stopAll sends SIGTERM to every live instance at once and waits for
// each; every one must exit 0 within limit.
func (f *fleet) stopAll(limit time.Duration) []error {
	f.mu.Lock()
	live := f.live
	f.live = nil
	f.mu.Unlock()
	errs := make([]error, len(live))
	var wg sync.WaitGroup
	for n, inst := range live {
		wg.Go(func() { _, errs[n] = inst.terminate(limit) })
	}
	wg.Wait()
	return errs
}

// killAll kills whatever still runs: the end of a failed run.
func (f *fleet) killAll() {
	f.mu.Lock()
	all := f.all
	f.live = nil
	f.mu.Unlock()
	for _, inst := range all {
		select {
		case <-inst.exited:
		default:
			_ = inst.kill()
		}
	}
}
