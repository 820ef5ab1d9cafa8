/// LayerNorm over the last dimension: y = (x − mean) / sqrt(var + eps) · weight + bias,
/// with the biased variance.
public enum LayerNorm {
    /// x, y: [rows × dim]. Saves each row's mean and 1/std for the backward pass.
    public static func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               rows: Int, dim: Int, eps: Float, pool: ThreadPool) {
        typealias V = SIMD8<Float>
        pool.parallelFor(rows, grain: 4) { range in
            for r in range {
                let row = x + r * dim, out = y + r * dim
                let rx = UnsafeRawPointer(row), ro = UnsafeMutableRawPointer(out)
                let rw = UnsafeRawPointer(weight), rb = bias.map { UnsafeRawPointer($0) }
                let mu = VectorOps.sum(row, count: dim) / Float(dim)
                let vmu = V(repeating: mu)
                var squares = V(), variance: Float = 0, i = 0
                while i + 8 <= dim {
                    let d = rx.loadUnaligned(fromByteOffset: i * 4, as: V.self) - vmu
                    squares += d * d
                    i += 8
                }
                variance = squares.sum()
                while i < dim { let d = row[i] - mu; variance += d * d; i += 1 }
                let s = 1 / (variance / Float(dim) + eps).squareRoot()
                let vs = V(repeating: s)
                i = 0
                while i + 8 <= dim {
                    var v = (rx.loadUnaligned(fromByteOffset: i * 4, as: V.self) - vmu) * vs * rw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                    if let rb { v += rb.loadUnaligned(fromByteOffset: i * 4, as: V.self) }
                    ro.storeBytes(of: v, toByteOffset: i * 4, as: V.self)
                    i += 8
                }
                while i < dim { out[i] = (row[i] - mu) * s * weight[i] + (bias?[i] ?? 0); i += 1 }
                mean[r] = mu
                rstd[r] = s
            }
        }
    }

    /// dx += ∂L/∂x; dWeight += ∂L/∂weight; dBias += ∂L/∂bias.
    ///
    /// `scratch` holds `threads × 2·dim` floats: per-thread weight and bias gradients, summed
    /// at the end so threads never write the same place.
    public static func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>, dBias: UnsafeMutablePointer<Float>?,
                                rows: Int, dim: Int, scratch: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let threads = pool.threadCount
        scratch.update(repeating: 0, count: threads * 2 * dim)
        pool.run { worker in
            let begin = rows * worker / threads, end = rows * (worker + 1) / threads
            let dw = scratch + worker * 2 * dim, db = dw + dim
            typealias V = SIMD8<Float>
            let rw = UnsafeRawPointer(weight), rdw = UnsafeMutableRawPointer(dw), rdb = UnsafeMutableRawPointer(db)
            for r in begin..<end {
                let g = dy + r * dim, row = x + r * dim, out = dx + r * dim
                let rg = UnsafeRawPointer(g), rx = UnsafeRawPointer(row), ro = UnsafeMutableRawPointer(out)
                let mu = mean[r], s = rstd[r]
                let vmu = V(repeating: mu), vs = V(repeating: s)
                // With n = (x − mean)·s and dn = dy·weight:
                // dx = s · (dn − mean(dn) − n · mean(dn · n)); eight lanes of partial sums.
                var sumsDn = V(), sumsDnN = V(), i = 0
                while i + 8 <= dim {
                    let o = i * 4
                    let gi = rg.loadUnaligned(fromByteOffset: o, as: V.self)
                    let n = (rx.loadUnaligned(fromByteOffset: o, as: V.self) - vmu) * vs
                    let dn = gi * rw.loadUnaligned(fromByteOffset: o, as: V.self)
                    sumsDn += dn
                    sumsDnN += dn * n
                    rdw.storeBytes(of: rdw.loadUnaligned(fromByteOffset: o, as: V.self) + gi * n, toByteOffset: o, as: V.self)
                    rdb.storeBytes(of: rdb.loadUnaligned(fromByteOffset: o, as: V.self) + gi, toByteOffset: o, as: V.self)
                    i += 8
                }
                var sumDn = sumsDn.sum(), sumDnN = sumsDnN.sum()
                for i in i..<dim {
                    let n = (row[i] - mu) * s
                    let dn = g[i] * weight[i]
                    sumDn += dn
                    sumDnN += dn * n
                    dw[i] += g[i] * n
                    db[i] += g[i]
                }
                let meanDn = sumDn / Float(dim), meanDnN = sumDnN / Float(dim)
                let vMeanDn = V(repeating: meanDn), vMeanDnN = V(repeating: meanDnN)
                i = 0
                while i + 8 <= dim {
                    let o = i * 4
                    let n = (rx.loadUnaligned(fromByteOffset: o, as: V.self) - vmu) * vs
                    let dn = rg.loadUnaligned(fromByteOffset: o, as: V.self) * rw.loadUnaligned(fromByteOffset: o, as: V.self)
                    ro.storeBytes(of: ro.loadUnaligned(fromByteOffset: o, as: V.self) + vs * (dn - vMeanDn - n * vMeanDnN),
                                  toByteOffset: o, as: V.self)
                    i += 8
                }
                for i in i..<dim {
                    let n = (row[i] - mu) * s
                    out[i] += s * (g[i] * weight[i] - meanDn - n * meanDnN)
                }
            }
        }
        for worker in 0..<threads {
            VectorOps.add(scratch + worker * 2 * dim, into: dWeight, count: dim)
            if let dBias { VectorOps.add(scratch + worker * 2 * dim + dim, into: dBias, count: dim) }
        }
    }
}
