package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// disturbance is one kind of trouble the run makes.
type disturbance int

const (
	kill9      disturbance = iota // SIGKILL a random instance, start a new one
	sigterm                       // SIGTERM a random instance (must exit 0 in time), start a new one
	scale                         // add an instance, or remove the added one with SIGTERM
	brokerStop                    // stop the real broker, start it again on the same data
)

// tally is what the disturbances did. Only the disturber's goroutine
// writes it; the test reads it after that goroutine ended.
type tally struct {
	kills, sigterms, restarts, adds, removes, brokerRestarts int
	shutdowns                                                []time.Duration // SIGTERM to exit
	shutdownFailures                                         []string
	// dupBound is the most records the disturbances may cause to be
	// delivered again; see window.
	dupBound int64
	events   []string
}

// disturber runs the planned disturbances at random intervals over the
// publishing window.
type disturber struct {
	s      settings
	rng    *rand.Rand
	fleet  *fleet
	kafka  *kafka
	ledger *ledger
	group  string
	topic  string
	began  time.Time
	logf   func(format string, args ...any)
	tally  tally
}

// plan is the disturbances in a random order.
func (d *disturber) plan() []disturbance {
	var plan []disturbance
	for kind, n := range map[disturbance]int{kill9: d.s.kills, sigterm: d.s.sigterms, scale: d.s.scales, brokerStop: d.s.brokerRestarts} {
		for range n {
			plan = append(plan, kind)
		}
	}
	slices.Sort(plan) // map order is random: sort, then shuffle with the seeded rng
	d.rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	return plan
}

// run performs the plan; it returns the first error that leaves the run
// without its instances or broker.
func (d *disturber) run(ctx context.Context) error {
	plan := d.plan()
	mean := max(time.Second, d.s.publishWindow()/time.Duration(len(plan)+1))
	for _, kind := range plan {
		timer := time.NewTimer(mean/2 + time.Duration(d.rng.Int64N(int64(mean))))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		if err := d.do(ctx, kind); err != nil {
			return err
		}
	}
	for d.fleet.size() > d.s.instances { // an odd number of scale events
		if err := d.do(ctx, scale); err != nil {
			return err
		}
	}
	return nil
}

func (d *disturber) do(ctx context.Context, kind disturbance) error {
	if d.fleet.size() == 0 {
		return fmt.Errorf("no kbridge instance left to disturb")
	}
	switch kind {
	case kill9:
		inst := d.fleet.pick(d.rng)
		err := inst.kill()
		d.fleet.drop(inst)
		if err != nil {
			return err
		}
		d.tally.kills++
		d.note(ctx, "kill -9 %s", inst.name)
		return d.restart(ctx)
	case sigterm:
		d.terminate(ctx, d.fleet.pick(d.rng), "SIGTERM")
		d.tally.sigterms++
		return d.restart(ctx)
	case scale:
		if d.fleet.size() > d.s.instances {
			d.terminate(ctx, d.fleet.pick(d.rng), "remove (SIGTERM)")
			d.tally.removes++
			return nil
		}
		d.tally.adds++
		return d.restart(ctx)
	case brokerStop:
		return d.restartBroker(ctx)
	}
	return fmt.Errorf("unknown disturbance %d", kind)
}

// terminate stops one instance gracefully: it must exit 0 within the
// shutdown timeout (and a second for the process to end).
func (d *disturber) terminate(ctx context.Context, inst *instance, what string) {
	took, err := inst.terminate(shutdownTimeout + 10*time.Second)
	d.fleet.drop(inst)
	d.tally.shutdowns = append(d.tally.shutdowns, took)
	if err == nil && took > shutdownTimeout+time.Second {
		err = fmt.Errorf("%s took %v to exit after SIGTERM, over the %v shutdown timeout", inst.name, took.Round(time.Millisecond), shutdownTimeout)
	}
	if err != nil {
		d.tally.shutdownFailures = append(d.tally.shutdownFailures, err.Error())
	}
	d.note(ctx, "%s %s: exited after %v (%v)", what, inst.name, took.Round(time.Millisecond), err)
}

// restart starts a new instance (it joins the group: a rebalance).
func (d *disturber) restart(ctx context.Context) error {
	inst, err := d.fleet.start()
	if err != nil {
		return err
	}
	d.tally.restarts++
	d.note(ctx, "start %s", inst.name)
	return nil
}

// restartBroker stops the broker, leaves it down for a few seconds, starts
// it again and waits until it serves and the group is whole again.
func (d *disturber) restartBroker(ctx context.Context) error {
	before := d.committedNow(ctx)
	if err := d.kafka.proc.stop(); err != nil {
		return err
	}
	down := time.Duration(2+d.rng.IntN(7)) * time.Second
	timer := time.NewTimer(down)
	<-timer.C
	if err := d.kafka.proc.start(); err != nil {
		return err
	}
	if err := d.kafka.waitServing(ctx, 2*time.Minute, d.topic); err != nil {
		return err
	}
	d.tally.brokerRestarts++
	d.waitGroupWhole(ctx)
	d.waitCommitted(ctx, d.ledger.doneEnd())
	d.addWindow(ctx, before, fmt.Sprintf("broker stopped for %v and restarted", down), true)
	return nil
}

// waitCommitted polls until the group committed at least target in every
// partition, for at most two minutes. After a broker restart, members may
// learn only seconds later that their sessions expired; once the group
// has committed past what was acknowledged when the broker came back, any
// such reassignment and its redeliveries are behind it.
func (d *disturber) waitCommitted(ctx context.Context, target map[int32]int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		committed, err := d.kafka.committed(ctx, d.group, d.topic)
		behind := err != nil
		for p, off := range target {
			behind = behind || committed[p] < off
		}
		if !behind {
			return
		}
		poll := time.NewTimer(100 * time.Millisecond)
		<-poll.C
	}
	d.logf("the group did not commit past %v within two minutes of the broker's return", target)
}

// waitGroupWhole polls until the group is stable with every live instance
// in it, for at most two session timeouts past the rebalance timeout.
func (d *disturber) waitGroupWhole(ctx context.Context) {
	deadline := time.Now().Add(2*sessionTimeout + rebalanceTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		described, err := d.kafka.adm.DescribeGroups(qctx, d.group)
		cancel()
		if g := described[d.group]; err == nil && g.State == "Stable" && len(g.Members) == d.fleet.size() {
			return
		}
		poll := time.NewTimer(100 * time.Millisecond)
		<-poll.C
	}
}

// note logs an event and adds its window to the duplicate bound.
func (d *disturber) note(ctx context.Context, format string, args ...any) {
	d.addWindow(ctx, d.committedNow(ctx), fmt.Sprintf(format, args...), false)
}

// addWindow adds to the duplicate bound the records an event may cause to
// be delivered again, and logs the event. Why this bounds duplicates: a
// record is delivered again only when a partition changes hands (or its
// owner dies) and the next owner starts at the committed offset, below
// records that were already acknowledged. Every such change follows one of
// the run's events. Per partition, taken after the event:
//
//   - "acknowledged" (the done end: past the highest offset acknowledged or
//     dead-lettered) minus committed: the records acknowledged but not
//     committed;
//   - plus the records in flight at the event that the webhook may
//     acknowledge only after kbridge stopped listening (a kill; a request
//     cut when partitions are lost). Those below the done end are counted
//     above already (a record in flight is at or past its partition's
//     committed offset, and the partition changes hands only seconds after
//     the read). The others lie in [done end, log end), the log end read
//     after the done end: a record is in the log before it is fetched.
//     And there are at most settings.inFlight of them: with ordering
//     partition, one request's worth per partition, which is one record
//     (max_in_flight 1), or with batch delivery a run of up to max_records
//     that the webhook may acknowledge all at once. So
//     min(inFlight, log end - done end) per partition; without the log end
//     (the broker away for a minute), inFlight.
//
// For a broker restart, committed is read before the stop, and the done
// end once the group has committed past what was acknowledged when the
// broker returned (see waitCommitted), because commits fail while
// acknowledgements go on in between. Its in-flight records are counted
// as inFlight per partition, not bounded by the log end (afterRestart):
// members may learn seconds after the read that their sessions expired,
// and the records they then have in flight can lie past it.
func (d *disturber) addWindow(ctx context.Context, committed map[int32]int64, event string, afterRestart bool) {
	done := d.ledger.doneEnd()
	var end map[int32]int64
	if !afterRestart {
		end = d.offsetsNow(ctx, func(ctx context.Context) (map[int32]int64, error) { return d.kafka.endOffsets(ctx, d.topic) })
	}
	var n int64
	for p := range d.s.partitions {
		inFlight := d.s.inFlight()
		if e, ok := end[p]; ok {
			inFlight = min(inFlight, max(0, e-done[p]))
		}
		n += max(0, done[p]-committed[p]) + inFlight
	}
	d.tally.dupBound += n
	d.tally.events = append(d.tally.events, fmt.Sprintf("%6.1fs %s (may redeliver %d)", time.Since(d.began).Seconds(), event, n))
	d.logf("%s", d.tally.events[len(d.tally.events)-1])
}

// committedNow reads the committed offsets, retrying for up to a minute
// (the broker may be restarting); on failure it returns none, which only
// makes the bound larger.
func (d *disturber) committedNow(ctx context.Context) map[int32]int64 {
	return d.offsetsNow(ctx, func(ctx context.Context) (map[int32]int64, error) { return d.kafka.committed(ctx, d.group, d.topic) })
}

// offsetsNow calls read until it succeeds, for up to a minute; on failure
// it returns none.
func (d *disturber) offsetsNow(ctx context.Context, read func(context.Context) (map[int32]int64, error)) map[int32]int64 {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := read(ctx)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return c
		}
		poll := time.NewTimer(100 * time.Millisecond)
		<-poll.C
	}
}
