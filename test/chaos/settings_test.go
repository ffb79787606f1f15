package chaos

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Environment variables that configure the run. Only KBRIDGE_CHAOS is
// needed; the others override the mode's defaults.
const (
	envMode       = "KBRIDGE_CHAOS"           // short, long or soak
	envSeed       = "KBRIDGE_CHAOS_SEED"      // random seed (default: time-based, printed)
	envRecords    = "KBRIDGE_CHAOS_RECORDS"   // acknowledged publishes to reach
	envRate       = "KBRIDGE_CHAOS_RATE"      // records per second offered to kbridge
	envInstances  = "KBRIDGE_CHAOS_INSTANCES" // kbridge instances in the group
	envKills      = "KBRIDGE_CHAOS_KILLS"     // kill -9 + restart events
	envBrokerStop = "KBRIDGE_CHAOS_BROKER_RESTARTS"
	envFaults     = "KBRIDGE_CHAOS_FAULTS"     // webhook fault rates, e.g. 500=0.03,429=0.002,slow=0.005,reset=0.01
	envKafkaPort  = "KBRIDGE_CHAOS_KAFKA_PORT" // a test/kafka/start.sh broker the run may restart
	envSoakLength = "KBRIDGE_CHAOS_SOAK"       // soak duration (default 10m)
	envBinary     = "KBRIDGE_CHAOS_BIN"        // a prebuilt kbridge binary (default: go build)
	envKeepLogs   = "KBRIDGE_CHAOS_KEEP_LOGS"  // keep kbridge's logs even when the run passes
	envBatch      = "KBRIDGE_CHAOS_BATCH"      // batch delivery: max_records (empty or 0: one record per request)
)

// batchMaxWait is the subscription's batch max_wait when the run delivers
// in batches: long enough for records of several partitions and callers to
// share a request at the short run's 40 records/s, short against the
// attempt timeout.
const batchMaxWait = 20 * time.Millisecond

// faultRates are the probabilities with which the webhook answers a
// delivery with each kind of failure instead of 204.
type faultRates struct {
	status500 float64 // 500
	status429 float64 // 429 with Retry-After: 1
	slow      float64 // no reply before kbridge's attempt timeout
	reset     float64 // the connection is reset, no reply
}

func (f faultRates) String() string {
	return fmt.Sprintf("500=%g,429=%g,slow=%g,reset=%g", f.status500, f.status429, f.slow, f.reset)
}

// settings are one run's sizes, rates and disturbances.
type settings struct {
	mode       string
	seed       uint64
	records    int     // acknowledged publishes to reach
	rate       float64 // records per second
	instances  int     // kbridge instances normally in the group
	partitions int32
	valueBytes int // padding of each value
	poisonOne  int // one record in poisonOne carries a poison value (422 → DLQ)
	faults     faultRates
	batch      int // batch delivery's max_records; 0: one record per request

	// Disturbances: how many of each, spread over the publishing window.
	kills, sigterms, scales, brokerRestarts int

	soak time.Duration // soak mode only
}

// Timeouts the kbridge instances run with. The short session timeout lets
// the group reassign a killed member's partitions quickly; the short
// attempt timeout makes "slow" replies time out; the commit interval keeps
// the acknowledged-but-uncommitted window small.
const (
	sessionTimeout   = 6 * time.Second
	rebalanceTimeout = 15 * time.Second
	commitInterval   = 200 * time.Millisecond
	attemptTimeout   = 500 * time.Millisecond
	shutdownTimeout  = 10 * time.Second
	publishTimeout   = 5 * time.Second
)

// loadSettings reads the mode's defaults and the overrides from lookup.
// canRestartBroker says whether broker restarts are possible.
func loadSettings(lookup func(string) (string, bool), canRestartBroker bool) (settings, error) {
	mode, _ := lookup(envMode)
	s := settings{mode: mode, seed: uint64(time.Now().UnixNano()), valueBytes: 100, poisonOne: 200,
		faults: faultRates{status500: 0.03, status429: 0.002, slow: 0.005, reset: 0.01}}
	switch mode {
	case "short":
		s.records, s.rate, s.instances, s.partitions = 2400, 40, 2, 6
		s.kills, s.sigterms, s.scales = 2, 1, 2
		if canRestartBroker {
			s.brokerRestarts = 1
		}
	case "long":
		s.records, s.rate, s.instances, s.partitions = 100_000, 130, 3, 12
		s.kills, s.sigterms, s.scales = 12, 4, 6
		if canRestartBroker {
			s.brokerRestarts = 3
		}
	case "soak":
		s.records, s.rate, s.instances, s.partitions = 0, 200, 1, 6
		s.soak, s.poisonOne, s.faults = 10*time.Minute, 0, faultRates{}
	default:
		return s, fmt.Errorf("%s: want short, long or soak, got %q", envMode, mode)
	}
	var errs []string
	num := func(name string, set func(string) error) {
		if v, ok := lookup(name); ok && v != "" {
			if err := set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", name, v, err))
			}
		}
	}
	num(envSeed, func(v string) (err error) { s.seed, err = strconv.ParseUint(v, 10, 64); return err })
	num(envRecords, func(v string) (err error) { s.records, err = strconv.Atoi(v); return err })
	num(envRate, func(v string) (err error) { s.rate, err = strconv.ParseFloat(v, 64); return err })
	num(envInstances, func(v string) (err error) { s.instances, err = strconv.Atoi(v); return err })
	num(envKills, func(v string) (err error) { s.kills, err = strconv.Atoi(v); return err })
	num(envBrokerStop, func(v string) (err error) { s.brokerRestarts, err = strconv.Atoi(v); return err })
	num(envSoakLength, func(v string) (err error) { s.soak, err = time.ParseDuration(v); return err })
	num(envFaults, func(v string) (err error) { s.faults, err = parseFaults(v); return err })
	num(envBatch, func(v string) (err error) {
		if s.batch, err = strconv.Atoi(v); err == nil && (s.batch < 0 || s.batch > 10000) {
			err = fmt.Errorf("want 0 (off) or max_records from 1 to 10000")
		}
		return err
	})
	if len(errs) > 0 {
		return s, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	if s.rate <= 0 || s.instances < 1 || (mode != "soak" && s.records < 1) {
		return s, fmt.Errorf("rate, instances and records must be positive (got %g, %d, %d)", s.rate, s.instances, s.records)
	}
	if s.brokerRestarts > 0 && !canRestartBroker {
		return s, fmt.Errorf("%s=%d needs a broker the run may restart: set %s", envBrokerStop, s.brokerRestarts, envKafkaPort)
	}
	return s, nil
}

// parseFaults reads "500=0.03,429=0.002,slow=0.005,reset=0.01"; kinds not
// named are 0.
func parseFaults(v string) (faultRates, error) {
	var f faultRates
	fields := map[string]*float64{"500": &f.status500, "429": &f.status429, "slow": &f.slow, "reset": &f.reset}
	for _, kv := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(kv), "=")
		dst := fields[name]
		if !ok || dst == nil {
			return f, fmt.Errorf("%q: want kind=rate with kind 500, 429, slow or reset", kv)
		}
		rate, err := strconv.ParseFloat(num, 64)
		if err != nil || rate < 0 || rate > 1 {
			return f, fmt.Errorf("%q: rate must be a number from 0 to 1", kv)
		}
		*dst = rate
	}
	if f.status500+f.status429+f.slow+f.reset > 0.5 {
		return f, fmt.Errorf("the rates add up to more than 0.5: the webhook must mostly answer 2xx")
	}
	return f, nil
}

// publishWindow is how long publishing the records takes at the rate.
func (s settings) publishWindow() time.Duration {
	return time.Duration(float64(s.records) / s.rate * float64(time.Second))
}

// inFlight is the most records of one partition in flight to the webhook
// at once: the run uses ordering partition, so one request's worth, which
// is one record, or with batch delivery up to a batch of them.
func (s settings) inFlight() int64 {
	return int64(max(1, s.batch))
}

// batchString is the batch setting as the summary prints it.
func (s settings) batchString() string {
	if s.batch == 0 {
		return "off"
	}
	return fmt.Sprintf("%d(max_wait=%v)", s.batch, batchMaxWait)
}

func (s settings) String() string {
	return fmt.Sprintf("mode=%s seed=%d records=%d rate=%g/s instances=%d partitions=%d poison=1/%d faults=%s batch=%s kills=%d sigterms=%d scale-events=%d broker-restarts=%d",
		s.mode, s.seed, s.records, s.rate, s.instances, s.partitions, s.poisonOne, s.faults, s.batchString(), s.kills, s.sigterms, s.scales, s.brokerRestarts)
}
