package train

import (
	"time"

	"mct/data"
)

// TimeMCTUpdates times the MCT step for benchmarks (bench/mct): Bench on the local
// transport and cfg's device, returning the wall time of n updates of all views after
// warmup untimed ones.
func TimeMCTUpdates(cfg Config, ds *data.Dataset, warmup, n int) (time.Duration, error) {
	res, err := Bench(cfg, ds, warmup, n)
	if err != nil {
		return 0, err
	}
	return time.Duration(res.SecondsPerUpdate * float64(n) * float64(time.Second)), nil
}
