// Package pretrained benchmarks the Go forward pass of mct/data/pretrained
// against TensorFlow.js 4.22.0 (wasm backend, node) on the same models, the
// same layers and the same input size, in one command:
//
//	go test ./bench/pretrained -run '^$' -bench . -benchtime 5x
//
// Each network reports wall ms/image, images/s and CPU ms/image (process
// user+system time, which load from other users does not inflate) for Go on
// all cores (GOMAXPROCS), Go on one core, and TF.js. Inputs are 64 images at 96 px in
// batches of 32 (Go's Embed) or one batch of 64 (TF.js). The nsfwjs package
// and TF.js come from the cache (MCT_CACHE_DIR), fetched with npm on first use.
// TestViewsSmall runs both sides once on 2 images, so plain `go test` catches a
// benchmark that no longer runs.
//
// TestProbeAccuracy (MCT_PRETRAINED_PROBE=1, see probe_test.go) measures the views'
// linear-probe accuracy. Results: bench/RESULTS-pretrained.md.
package pretrained
