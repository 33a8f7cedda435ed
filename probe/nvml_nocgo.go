//go:build !cgo

package probe

// Inventory without cgo cannot open NVML; it records the CUDA environment and
// says why no GPU is listed.
func Inventory() (Report, error) {
	r := Report{GPUs: []GPU{}, NVML: "unavailable: this binary was built with CGO_ENABLED=0, which cannot load libnvidia-ml; use the cgo build for GPU nodes"}
	r.captureEnv()
	return r, nil
}
