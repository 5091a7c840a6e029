// Small dense numerics for the analysis tools (probes, PCA), in float64. No linear-algebra package
// is installed in node_modules and package.json is not ours to change, so this is a compact,
// self-contained set: a symmetric eigen-solver (Householder tridiagonalisation + implicit QL, the
// EISPACK tred2/tql2 pair as in JAMA), a row-space reduction that turns "d features, N examples"
// into at most min(N, d) orthogonal features, closed-form ridge on that basis, and multinomial /
// binary logistic regression by accelerated gradient descent with adaptive restart.

/** A dense row-major matrix of `rows` x `cols` float64 values. */
export interface Mat {
  data: Float64Array;
  rows: number;
  cols: number;
}

export const mat = (rows: number, cols: number, data = new Float64Array(rows * cols)): Mat => ({ data, rows, cols });

export function dot(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

export function norm(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/**
 * Column means and standard deviations (population), for standardising probe features. Dividing by
 * each column's own sd inflates columns that barely vary in the sample (float-rounding noise, a tiny
 * constant offset, a token code seen once) into unit-variance "signal" that an L2-penalised probe
 * then prefers and that does not generalise; so sd is floored at `relFloor` times the mean sd over
 * columns (relFloor 0 = plain per-column standardisation; constant columns then get sd 1).
 */
export function columnStats(X: Mat, relFloor = 0): { mean: Float64Array; sd: Float64Array } {
  const { rows: N, cols: d, data } = X;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let i = 0; i < N; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= N;
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < d; j++) {
      const c = data[i * d + j] - mean[j];
      sd[j] += c * c;
    }
  }
  let ms = 0;
  for (let j = 0; j < d; j++) {
    sd[j] = Math.sqrt(sd[j] / N);
    ms += sd[j];
  }
  const floor = relFloor * (ms / Math.max(d, 1));
  for (let j = 0; j < d; j++) sd[j] = Math.max(sd[j], floor > 0 ? floor : sd[j] > 0 ? 0 : 1);
  return { mean, sd };
}

/** (X - mean) / sd, as a new matrix. */
export function standardise(X: Mat, mean: Float64Array, sd: Float64Array): Mat {
  const out = mat(X.rows, X.cols);
  for (let i = 0; i < X.rows; i++) for (let j = 0; j < X.cols; j++) out.data[i * X.cols + j] = (X.data[i * X.cols + j] - mean[j]) / sd[j];
  return out;
}

/** A Aᵀ (rows x rows). */
export function gram(A: Mat): Mat {
  const { rows: n, cols: d, data } = A;
  const G = mat(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      const oi = i * d, oj = j * d;
      for (let k = 0; k < d; k++) s += data[oi + k] * data[oj + k];
      G.data[i * n + j] = s;
      G.data[j * n + i] = s;
    }
  }
  return G;
}

/** Aᵀ A (cols x cols). */
export function gramT(A: Mat): Mat {
  const { rows: n, cols: d, data } = A;
  const G = mat(d, d);
  for (let r = 0; r < n; r++) {
    const o = r * d;
    for (let i = 0; i < d; i++) {
      const a = data[o + i];
      if (a === 0) continue;
      const gi = i * d;
      for (let j = 0; j <= i; j++) G.data[gi + j] += a * data[o + j];
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) G.data[j * d + i] = G.data[i * d + j];
  return G;
}

/**
 * Eigen-decomposition of a symmetric n x n matrix: values in descending order and the matching
 * unit eigenvectors as the columns of `vectors` (row-major n x n). Householder reduction to
 * tridiagonal form, then the implicit QL algorithm (tred2 + tql2).
 */
export function symmetricEigen(A: Mat): { values: Float64Array; vectors: Mat } {
  const n = A.rows;
  if (A.cols !== n) throw new Error(`symmetricEigen needs a square matrix, got ${A.rows} x ${A.cols}`);
  const V: Float64Array[] = Array.from({ length: n }, (_, i) => Float64Array.from(A.data.subarray(i * n, (i + 1) * n)));
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  if (n === 0) return { values: d, vectors: mat(0, 0) };

  // tred2: Householder tridiagonalisation, accumulating the transformations in V.
  for (let j = 0; j < n; j++) d[j] = V[n - 1][j];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[i - 1][j];
        V[i][j] = 0;
        V[j][i] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[j][i] = f;
        g = e[j] + V[j][j] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[k][j] * d[k];
          e[k] += V[k][j] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[k][j] -= f * e[k] + g * d[k];
        d[j] = V[i - 1][j];
        V[i][j] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[n - 1][i] = V[i][i];
    V[i][i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[k][i + 1] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[k][i + 1] * V[k][j];
        for (let k = 0; k <= i; k++) V[k][j] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[k][i + 1] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[n - 1][j];
    V[n - 1][j] = 0;
  }
  V[n - 1][n - 1] = 1;
  e[0] = 0;

  // tql2: implicit QL iterations on the tridiagonal matrix.
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 200) throw new Error('symmetricEigen: QL iteration did not converge');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1, c2 = 1, c3 = 1;
        const el1 = e[l + 1];
        let s = 0, s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (let k = 0; k < n; k++) {
            const vk = V[k];
            h = vk[i + 1];
            vk[i + 1] = s * vk[i] + c * h;
            vk[i] = c * vk[i] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }

  const order = [...d.keys()].sort((a, b) => d[b] - d[a]);
  const values = Float64Array.from(order, (i) => d[i]);
  const vectors = mat(n, n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) vectors.data[r * n + c] = V[r][order[c]];
  return { values, vectors };
}

/** An orthonormal basis of a row space, the data's coordinates in it, and the way back. */
export interface RowSpace {
  /** N x r: the coordinates of X's rows on r orthonormal directions v_c, with ZᵀZ = diag(values). */
  Z: Mat;
  /** Descending eigenvalues of XᵀX (equivalently XXᵀ) that were kept. */
  values: Float64Array;
  /** Σ_c beta_c v_c: coordinates back to a d-vector in the original feature space. */
  lift: (beta: ArrayLike<number>) => Float64Array;
}

/**
 * An orthonormal basis of the row space of X (N x d) and the coordinates Z = X·V (N x r), with
 * ZᵀZ = diag(values). Computed from the smaller of XXᵀ and XᵀX, so a probe on a few hundred
 * examples of a 2880-wide residual stream solves a few-hundred-wide problem. L2-penalised linear
 * models have their optimum in this row space (representer theorem), so fitting on Z and lifting
 * the coefficients back is exact.
 */
export function rowSpace(X: Mat, relTol = 1e-10): RowSpace {
  const { rows: N, cols: d } = X;
  if (N < d) {
    // X = U Λ^½ Vᵀ: Z = X·V = U Λ^½, and Σ β_c v_c = Xᵀ α with α = Σ β_c u_c / √λ_c (no d x r basis needed).
    const { values: lam, vectors: U } = symmetricEigen(gram(X));
    const keep = [...lam.keys()].filter((i) => lam[i] > relTol * Math.max(lam[0], 1e-300));
    const r = keep.length;
    const Z = mat(N, r);
    keep.forEach((i, c) => {
      const s = Math.sqrt(lam[i]);
      for (let n = 0; n < N; n++) Z.data[n * r + c] = U.data[n * N + i] * s;
    });
    const lift = (beta: ArrayLike<number>) => {
      const out = new Float64Array(d);
      for (let n = 0; n < N; n++) {
        let a = 0;
        keep.forEach((i, c) => (a += (beta[c] * U.data[n * N + i]) / Math.sqrt(lam[i])));
        if (a === 0) continue;
        const o = n * d;
        for (let j = 0; j < d; j++) out[j] += a * X.data[o + j];
      }
      return out;
    };
    return { Z, values: Float64Array.from(keep, (i) => lam[i]), lift };
  }
  const { values: lam, vectors: W } = symmetricEigen(gramT(X));
  const keep = [...lam.keys()].filter((i) => lam[i] > relTol * Math.max(lam[0], 1e-300));
  const r = keep.length;
  const Z = mat(N, r);
  for (let n = 0; n < N; n++) {
    keep.forEach((i, c) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += X.data[n * d + j] * W.data[j * d + i];
      Z.data[n * r + c] = s;
    });
  }
  const lift = (beta: ArrayLike<number>) => {
    const out = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      let s = 0;
      keep.forEach((i, c) => (s += beta[c] * W.data[j * d + i]));
      out[j] = s;
    }
    return out;
  };
  return { Z, values: Float64Array.from(keep, (i) => lam[i]), lift };
}

/**
 * Ridge regression: minimise (1/2N)·||y - b - Xw||² + (l2/2)·||w||² (bias unpenalised). Columns are
 * centred here; on the centred row-space basis XᵀX is diagonal, so the normal equations need no
 * factorisation: β_c = z_cᵀ(y - ȳ) / (λ_c + N·l2), and b = ȳ - w·x̄. `centred`: rowSpace of X with
 * its columns already centred, to reuse one decomposition for several label sets.
 */
export function ridge(X: Mat, y: ArrayLike<number>, l2: number, centred?: RowSpace): { w: Float64Array; bias: number } {
  const { rows: N, cols: d } = X;
  let ybar = 0;
  for (let i = 0; i < N; i++) ybar += y[i];
  ybar /= N;
  const xbar = new Float64Array(d);
  for (let i = 0; i < N; i++) for (let j = 0; j < d; j++) xbar[j] += X.data[i * d + j] / N;
  const rs = centred ?? (() => {
    const Xc = mat(N, d);
    for (let i = 0; i < N; i++) for (let j = 0; j < d; j++) Xc.data[i * d + j] = X.data[i * d + j] - xbar[j];
    return rowSpace(Xc);
  })();
  const { Z, values, lift } = rs;
  const r = Z.cols;
  const beta = new Float64Array(r);
  for (let c = 0; c < r; c++) {
    let s = 0;
    for (let i = 0; i < N; i++) s += Z.data[i * r + c] * (y[i] - ybar);
    beta[c] = s / (values[c] + N * l2);
  }
  const w = lift(beta);
  return { w, bias: ybar - dot(w, xbar) };
}

export interface LogisticFit {
  /** K x d weights (K = 1 for two classes: the logit of class 1 over class 0; else one row per class). */
  W: Float64Array[];
  bias: Float64Array;
  iterations: number;
  converged: boolean;
}

/**
 * L2-penalised logistic regression: binary (sigmoid, one weight vector) for two classes, multinomial
 * (softmax) otherwise. Minimises mean cross-entropy + (l2/2)·||W||² (bias unpenalised) by Nesterov's
 * accelerated gradient with step 1/L (L from the largest eigenvalue of ZᵀZ/N) and adaptive restart,
 * on the row-space basis of X (pass a precomputed rowSpace(X) to fit several label sets on one X);
 * labels are class indices 0..C-1.
 */
export function logistic(X: Mat | RowSpace, labels: ArrayLike<number>, C: number, l2: number, opts: { maxIter?: number; tol?: number } = {}): LogisticFit {
  const maxIter = opts.maxIter ?? 5000;
  const tol = opts.tol ?? 1e-7;
  const { Z, values, lift } = 'lift' in X ? X : rowSpace(X);
  const N = Z.rows;
  const r = Z.cols;
  const K = C === 2 ? 1 : C;
  const P = K * (r + 1); // per output: r weights then the bias
  const lipschitz = (C === 2 ? 0.25 : 0.5) * ((values[0] ?? 0) / N + 1) + l2;
  const step = 1 / lipschitz;

  const logits = new Float64Array(K);
  const objective = (theta: Float64Array, grad: Float64Array | null): number => {
    if (grad) grad.fill(0);
    let loss = 0;
    for (let i = 0; i < N; i++) {
      const zi = i * r;
      for (let k = 0; k < K; k++) {
        let s = theta[k * (r + 1) + r];
        const o = k * (r + 1);
        for (let c = 0; c < r; c++) s += theta[o + c] * Z.data[zi + c];
        logits[k] = s;
      }
      const y = labels[i];
      if (K === 1) {
        const s = logits[0];
        // log(1 + e^s) - y s, computed stably
        loss += (s > 0 ? s + Math.log1p(Math.exp(-s)) : Math.log1p(Math.exp(s))) - (y === 1 ? s : 0);
        if (grad) {
          const g = 1 / (1 + Math.exp(-s)) - (y === 1 ? 1 : 0);
          for (let c = 0; c < r; c++) grad[c] += g * Z.data[zi + c];
          grad[r] += g;
        }
      } else {
        let max = -Infinity;
        for (let k = 0; k < K; k++) max = Math.max(max, logits[k]);
        let sum = 0;
        for (let k = 0; k < K; k++) sum += Math.exp(logits[k] - max);
        const lse = max + Math.log(sum);
        loss += lse - logits[y];
        if (grad) {
          for (let k = 0; k < K; k++) {
            const g = Math.exp(logits[k] - lse) - (k === y ? 1 : 0);
            const o = k * (r + 1);
            for (let c = 0; c < r; c++) grad[o + c] += g * Z.data[zi + c];
            grad[o + r] += g;
          }
        }
      }
    }
    loss /= N;
    let pen = 0;
    for (let k = 0; k < K; k++) for (let c = 0; c < r; c++) pen += theta[k * (r + 1) + c] ** 2;
    if (grad) {
      for (let p = 0; p < P; p++) grad[p] /= N;
      for (let k = 0; k < K; k++) for (let c = 0; c < r; c++) grad[k * (r + 1) + c] += l2 * theta[k * (r + 1) + c];
    }
    return loss + 0.5 * l2 * pen;
  };

  let x = new Float64Array(P);
  let xPrev = new Float64Array(P);
  const yv = new Float64Array(P);
  const g = new Float64Array(P);
  let t = 1;
  let fPrev = Infinity;
  let iterations = 0;
  let converged = false;
  for (; iterations < maxIter; iterations++) {
    objective(yv, g);
    let gmax = 0;
    for (let p = 0; p < P; p++) gmax = Math.max(gmax, Math.abs(g[p]));
    if (gmax < tol) {
      x = Float64Array.from(yv);
      converged = true;
      break;
    }
    const next = new Float64Array(P);
    for (let p = 0; p < P; p++) next[p] = yv[p] - step * g[p];
    const f = objective(next, null);
    // Adaptive restart (O'Donoghue & Candès): drop the momentum when the objective goes up.
    if (f > fPrev) {
      t = 1;
      yv.set(x);
      fPrev = objective(x, null);
      continue;
    }
    fPrev = f;
    const tNext = (1 + Math.sqrt(1 + 4 * t * t)) / 2;
    const mom = (t - 1) / tNext;
    xPrev = x;
    x = next;
    for (let p = 0; p < P; p++) yv[p] = x[p] + mom * (x[p] - xPrev[p]);
    t = tNext;
  }
  const W: Float64Array[] = [];
  const bias = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    W.push(lift(x.subarray(k * (r + 1), k * (r + 1) + r)));
    bias[k] = x[k * (r + 1) + r];
  }
  return { W, bias, iterations, converged };
}

/** Predicted class of each row of X under a logistic fit. */
export function predictClasses(fit: LogisticFit, X: Mat): number[] {
  const out: number[] = [];
  for (let i = 0; i < X.rows; i++) {
    const row = X.data.subarray(i * X.cols, (i + 1) * X.cols);
    if (fit.W.length === 1) {
      out.push(dot(fit.W[0], row) + fit.bias[0] > 0 ? 1 : 0);
    } else {
      let best = 0;
      let bestV = -Infinity;
      fit.W.forEach((w, k) => {
        const v = dot(w, row) + fit.bias[k];
        if (v > bestV) {
          bestV = v;
          best = k;
        }
      });
      out.push(best);
    }
  }
  return out;
}

/**
 * The top-k principal axes of the (already centred) rows of X: unit components (k x d, rows), the
 * variance along each, and the total variance (trace of the covariance, divisor N - 1).
 */
export function principalComponents(X: Mat, k: number): { components: Float64Array[]; variances: number[]; total: number } {
  const { rows: N, cols: d } = X;
  const denom = Math.max(N - 1, 1);
  let total = 0;
  for (let i = 0; i < X.data.length; i++) total += X.data[i] * X.data[i];
  total /= denom;
  const { values, lift } = rowSpace(X, 1e-12);
  const kk = Math.min(k, values.length);
  const components: Float64Array[] = [];
  for (let c = 0; c < kk; c++) {
    const unit = new Float64Array(values.length);
    unit[c] = 1;
    const v = lift(unit);
    // A deterministic sign: the largest-magnitude coordinate is positive.
    let at = 0;
    for (let j = 1; j < d; j++) if (Math.abs(v[j]) > Math.abs(v[at])) at = j;
    if (v[at] < 0) for (let j = 0; j < d; j++) v[j] = -v[j];
    components.push(v);
  }
  return { components, variances: Array.from(values.subarray(0, kk), (l) => l / denom), total };
}

/** Pearson correlation of two equal-length series. */
export function pearson(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length || a.length < 2) throw new Error(`pearson needs two series of one length >= 2, got ${a.length} and ${b.length}`);
  const n = a.length;
  const ma = a.reduce((x, y) => x + y, 0) / n;
  const mb = b.reduce((x, y) => x + y, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Ranks 0..n-1 with ties averaged. */
function ranks(a: readonly number[]): number[] {
  const order = a.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
  const r = new Array<number>(a.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation (Pearson of the ranks). */
export const spearman = (a: readonly number[], b: readonly number[]): number => pearson(ranks(a), ranks(b));
