// Package pretrained computes views from pretrained convolutional networks,
// in Go, with no model hub and no Python: MobileNetV2 (224 px, 2.6 M
// parameters) and InceptionV3 (299 px, 22 M) as the npm package nsfwjs@4.4.0
// (MIT) ships them, in the TensorFlow.js layers format.
//
// # Views
//
// Importing the package registers two view families with package data:
//
//	mobilenet_v2[:LAYER][@SIZE]   default block_13_expand_relu@96 (576 values)
//	inception_v3[:LAYER][@SIZE]   default mixed7@96 (768 values)
//
// A grey image is scaled as nsfwjs does it (pixel/255, no mean subtraction,
// for both networks), resized bilinearly to SIZE×SIZE with align_corners,
// copied to the three RGB channels, run up to LAYER, and averaged over the
// layer's spatial positions. Any layer before the classifier head can be
// named (Model.Layers lists them). With a logistic-regression probe on
// Fashion-MNIST at 1000 labels the defaults score 0.843 (MobileNetV2) and
// 0.818 (InceptionV3) against 0.803 for raw pixels, on the first 2000 test
// images (bench/RESULTS-pretrained.md; the issue reports 0.845 and 0.818 on
// the whole test set, HOG 0.820). Two different networks make a weakly
// redundant pair of views, the setting of the Meta Co-Training paper.
//
// The package is fetched once with `npm pack nsfwjs@4.4.0` (EnsurePackage)
// into the cache directory (CacheDir: SetCacheDir, else $MCT_CACHE_DIR, else
// $XDG_CACHE_HOME/mct or ~/.cache/mct), its integrity checked against the
// registry hash pinned here; nothing else is ever downloaded. A view build
// commits its work every ChunkImages images under CACHE/partial, so an
// interrupted build resumes; the view's parameters record the package and
// version, layer, input size and the SHA-256 of the weights.
//
// # Direct use
//
//	m, err := pretrained.Load(cacheDir, "inception_v3") // or ReadModel(dir)
//	net, err := m.Compile("mixed7", 96)
//	x := pretrained.Preprocess(grey, n, 28, 28, net.Size) // n×96×96×3
//	v := net.Embed(x, n)                                   // n×net.OutC
//	fmap := net.Forward(x, n)                              // n×OutH×OutW×OutC
//
// # Reading the format
//
// model.min.js is a browserify bundle whose module exports the model.json
// object (topology and weights manifest) as a JavaScript literal, and each
// group1-shardNofM.min.js exports a base64 string of weight bytes. The
// literal is parsed, never executed. Weights are affine-quantised (value =
// min + scale·q with uint8 or uint16 q, per tensor) and dequantised exactly
// as TF.js does it; sizes are checked against the manifest, and any layer,
// dtype or option outside what the forward pass implements is an error that
// names the file and the layer.
//
// # Forward pass
//
// Compile keeps only the layers the target depends on and fuses what the
// graph allows: BatchNormalization is folded into the preceding
// convolution's kernel and bias, ReLU/ReLU6 runs in the convolution's
// epilogue, ZeroPadding2D becomes the convolution's padding; a tensor some
// other needed layer reads (or the target itself) is never fused away.
// Convolutions are GEMMs (mct/blas) over im2col tiles of about 1 MB, or over
// the input itself for 1×1 convolutions; tiles, depthwise rows and pooling
// rows run on GOMAXPROCS goroutines, with the BLAS single-threaded meanwhile.
// The tiling depends only on the shapes, so a result has the same bits
// whatever the number of cores (it may differ in the last bit with the batch
// size; Embed always uses batches of EmbedBatch).
//
// Correctness is tested two ways: every layer type and fusion case against
// a float64 reference written from the Keras definitions (on a synthetic
// model in the same file format), and both real networks against
// TensorFlow.js 4.22.0 (wasm backend) on Fashion-MNIST images, where the
// largest difference is below 1e-5 of the layer's largest activation.
package pretrained
