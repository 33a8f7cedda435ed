package train

import "mct/nn"

// interposer is the CPU backend with every call that queues device work handed to
// through: the call's name, the stream operations cudaops issues for it (launches), its
// arguments, and the call itself, to run now or later. The test backends that stand for
// a GPU are interposers with their own through and their own methods for the calls that
// wait or order queues: countingBackend (syncs_test.go) counts and logs every call,
// deferredBackend (deferred_test.go) queues it as a GPU stream would.
type interposer struct {
	*nn.CPU
	through func(name string, launches int, args []any, call func())
}

func (ip *interposer) Copy(dst, src nn.Buf, n int) {
	ip.through("Copy", 1, []any{dst, src, n}, func() { ip.CPU.Copy(dst, src, n) })
}

func (ip *interposer) GatherRows(dst, src nn.Buf, cols int, idx nn.Buf, n int) {
	ip.through("GatherRows", 1, []any{dst, src, cols, idx, n}, func() { ip.CPU.GatherRows(dst, src, cols, idx, n) })
}

func (ip *interposer) Fill(x nn.Buf, n int, v float32) {
	ip.through("Fill", 1, []any{x, n, v}, func() { ip.CPU.Fill(x, n, v) })
}

func (ip *interposer) Gemm(tA, tB bool, m, n, k int, alpha float32, a, b nn.Buf, beta float32, cc nn.Buf) {
	ip.through("Gemm", 1, []any{tA, tB, m, n, k, alpha, a, b, beta, cc}, func() { ip.CPU.Gemm(tA, tB, m, n, k, alpha, a, b, beta, cc) })
}

func (ip *interposer) GemmStrided(tA, tB bool, m, n, k int, alpha float32, a nn.Buf, lda int, b nn.Buf, ldb int, beta float32, cc nn.Buf, ldc int) {
	ip.through("GemmStrided", 1, []any{tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc}, func() {
		ip.CPU.GemmStrided(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
	})
}

func (ip *interposer) CopyCols(dst nn.Buf, dstCols, dstOff int, src nn.Buf, srcCols, srcOff int, rows, cols int, beta float32) {
	ip.through("CopyCols", 1, []any{dst, dstCols, dstOff, src, srcCols, srcOff, rows, cols, beta}, func() { ip.CPU.CopyCols(dst, dstCols, dstOff, src, srcCols, srcOff, rows, cols, beta) })
}

func (ip *interposer) FoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int) {
	ip.through("FoldCols", 1, []any{dst, dstCols, src, srcCols, rows, off}, func() { ip.CPU.FoldCols(dst, dstCols, src, srcCols, rows, off) })
}

func (ip *interposer) UnfoldCols(dst nn.Buf, dstCols int, src nn.Buf, srcCols, rows, off int, beta float32) {
	ip.through("UnfoldCols", 1, []any{dst, dstCols, src, srcCols, rows, off, beta}, func() { ip.CPU.UnfoldCols(dst, dstCols, src, srcCols, rows, off, beta) })
}

func (ip *interposer) Axpy(y nn.Buf, alpha float32, x nn.Buf, n int) {
	ip.through("Axpy", 1, []any{y, alpha, x, n}, func() { ip.CPU.Axpy(y, alpha, x, n) })
}

func (ip *interposer) Scale(x nn.Buf, n int, alpha float32) {
	ip.through("Scale", 1, []any{x, n, alpha}, func() { ip.CPU.Scale(x, n, alpha) })
}

func (ip *interposer) Mul(x, y nn.Buf, n int) {
	ip.through("Mul", 1, []any{x, y, n}, func() { ip.CPU.Mul(x, y, n) })
}

func (ip *interposer) AddBiasLeakyReLU(x, bias nn.Buf, rows, cols int, slope float32) {
	ip.through("AddBiasLeakyReLU", 1, []any{x, bias, rows, cols, slope}, func() { ip.CPU.AddBiasLeakyReLU(x, bias, rows, cols, slope) })
}

func (ip *interposer) LeakyReLUBackward(dx, dy, y nn.Buf, n int, slope float32) {
	ip.through("LeakyReLUBackward", 1, []any{dx, dy, y, n, slope}, func() { ip.CPU.LeakyReLUBackward(dx, dy, y, n, slope) })
}

func (ip *interposer) ColSums(dst, x nn.Buf, rows, cols int, beta float32) {
	ip.through("ColSums", 1, []any{dst, x, rows, cols, beta}, func() { ip.CPU.ColSums(dst, x, rows, cols, beta) })
}

func (ip *interposer) BNStats(stats, x, runMean nn.Buf, rows, cols int) {
	ip.through("BNStats", 1, []any{stats, x, runMean, rows, cols}, func() { ip.CPU.BNStats(stats, x, runMean, rows, cols) })
}

func (ip *interposer) BNMoments(mean, variance, runMean, runVar, stats nn.Buf, cols int, momentum float32) {
	ip.through("BNMoments", 1, []any{mean, variance, runMean, runVar, stats, cols, momentum}, func() { ip.CPU.BNMoments(mean, variance, runMean, runVar, stats, cols, momentum) })
}

func (ip *interposer) BNNormalize(y nn.Buf, ldy int, x, mean, variance, gamma, beta nn.Buf, rows, cols int, eps float32) {
	ip.through("BNNormalize", 1, []any{y, ldy, x, mean, variance, gamma, beta, rows, cols, eps}, func() { ip.CPU.BNNormalize(y, ldy, x, mean, variance, gamma, beta, rows, cols, eps) })
}

func (ip *interposer) BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance nn.Buf, rows, cols int, eps, beta float32) {
	ip.through("BNBackwardStats", 1, []any{stats, dgamma, dbeta, dy, x, mean, variance, rows, cols, eps, beta}, func() { ip.CPU.BNBackwardStats(stats, dgamma, dbeta, dy, x, mean, variance, rows, cols, eps, beta) })
}

func (ip *interposer) BNBackward(dx, dy, x, mean, variance, gamma, stats nn.Buf, rows, cols int, eps, slope float32) {
	ip.through("BNBackward", 1, []any{dx, dy, x, mean, variance, gamma, stats, rows, cols, eps, slope}, func() { ip.CPU.BNBackward(dx, dy, x, mean, variance, gamma, stats, rows, cols, eps, slope) })
}

func (ip *interposer) DropoutMask(mask nn.Buf, rows, cols int, p float32, key nn.RNGKey, rowBase uint32, stepAt nn.Buf) {
	ip.through("DropoutMask", 1, []any{mask, rows, cols, p, key, rowBase, stepAt}, func() { ip.CPU.DropoutMask(mask, rows, cols, p, key, rowBase, stepAt) })
}

func (ip *interposer) SoftmaxCE(loss, dx, x, labels nn.Buf, rows, cols int, invT, scale, beta float32, scaleAt nn.Buf) {
	ip.through("SoftmaxCE", 1, []any{loss, dx, x, labels, rows, cols, invT, scale, beta, scaleAt}, func() { ip.CPU.SoftmaxCE(loss, dx, x, labels, rows, cols, invT, scale, beta, scaleAt) })
}

func (ip *interposer) Softmax(y, x nn.Buf, rows, cols int, invT float32) {
	ip.through("Softmax", 1, []any{y, x, rows, cols, invT}, func() { ip.CPU.Softmax(y, x, rows, cols, invT) })
}

func (ip *interposer) Argmax(dst, x nn.Buf, rows, cols int) {
	ip.through("Argmax", 1, []any{dst, x, rows, cols}, func() { ip.CPU.Argmax(dst, x, rows, cols) })
}

func (ip *interposer) SampleGumbel(dst, x nn.Buf, rows, cols int, invT float32, key nn.RNGKey, rowIndex, stepAt nn.Buf) {
	ip.through("SampleGumbel", 1, []any{dst, x, rows, cols, invT, key, rowIndex, stepAt}, func() { ip.CPU.SampleGumbel(dst, x, rows, cols, invT, key, rowIndex, stepAt) })
}

func (ip *interposer) DotTo(dst, x, y nn.Buf, n int) {
	ip.through("DotTo", 2, []any{dst, x, y, n}, func() { ip.CPU.DotTo(dst, x, y, n) }) // partial sums, then the total
}

func (ip *interposer) Mean(dst, x nn.Buf, n int) {
	ip.through("Mean", 1, []any{dst, x, n}, func() { ip.CPU.Mean(dst, x, n) })
}

func (ip *interposer) ClipNorm(x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	ip.through("ClipNorm", 2, []any{x, n, maxNorm, norm}, func() { ip.CPU.ClipNorm(x, n, maxNorm, norm) }) // partial sums, then the scaling kernel that totals them itself
}

func (ip *interposer) ClipCoef(coef, x nn.Buf, n int, maxNorm float32, norm nn.Buf) {
	ip.through("ClipCoef", 2, []any{coef, x, n, maxNorm, norm}, func() { ip.CPU.ClipCoef(coef, x, n, maxNorm, norm) }) // partial sums, then their total and the factor
}

func (ip *interposer) CountEqual(dst, a, b nn.Buf, rows, cols int) {
	ip.through("CountEqual", 1, []any{dst, a, b, rows, cols}, func() { ip.CPU.CountEqual(dst, a, b, rows, cols) })
}

func (ip *interposer) MeanOthers(dst, src nn.Buf, views, n int) {
	ip.through("MeanOthers", 1, []any{dst, src, views, n}, func() { ip.CPU.MeanOthers(dst, src, views, n) })
}

func (ip *interposer) Adam(w, g, m, v nn.Buf, n int, h nn.AdamHyper, sched, gscale nn.Buf) {
	ip.through("Adam", 1, []any{w, g, m, v, n, h, sched, gscale}, func() { ip.CPU.Adam(w, g, m, v, n, h, sched, gscale) })
}
