"""Known labeling probabilities with extreme inverse weights: when is the IPW variance reliable?

All M units have a prediction; unit i is labeled with probability pi_i = expit(a + b x_i). The OLS
slope is estimated with ``label_prob``; the script prints, per method, the Monte Carlo variance of
the estimates, the mean estimated variance, their ratio and the coverage of 90% intervals.

    python simulations/label_prob_weights.py 400 3000 -2.2 1.0    # pi down to ~0.015: ratio ~0.7
    python simulations/label_prob_weights.py 400 20000 -2.2 1.0   # same probabilities, larger M: ~1
"""

import sys

import numpy as np
from scipy.special import expit

import ppinfer


def main(reps: int, M: int, a: float, b: float) -> None:
    estimates, variances, covered = {}, {}, {}
    for child in np.random.SeedSequence(7).spawn(reps):
        rng = np.random.default_rng(child)
        x = rng.normal(size=M)
        y = 1 + x + rng.normal(size=M) * (1 + 0.5 * np.abs(x))
        f = 0.5 + 1.3 * y + rng.normal(size=M)  # biased predictions
        pi = expit(a + b * x)
        labeled = rng.random(M) < pi
        X = np.column_stack([np.ones(M), x])
        model = ppinfer.OLS(y[labeled], X[labeled], f[labeled], X[~labeled], f[~labeled], label_prob=pi[labeled])
        for method in ("classical", "ppi", "ppi++"):
            res = model.fit(method=method)
            lower, upper = res.conf_int(0.1).iloc[1]
            estimates.setdefault(method, []).append(res.params.iloc[1])
            variances.setdefault(method, []).append(res.bse.iloc[1] ** 2)
            covered.setdefault(method, []).append(lower <= 1.0 <= upper)
    print(f"reps {reps}, M {M}, pi = expit({a} + {b} x): OLS slope (truth 1)")
    for method in estimates:
        mc, estimated = np.var(estimates[method]), np.mean(variances[method])
        print(f"  {method:9s} MC var {mc:.5f}  mean estimated var {estimated:.5f}  ratio {estimated / mc:.3f}  "
              f"coverage {np.mean(covered[method]):.3f}")


if __name__ == "__main__":
    reps, M, a, b = (int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) == 5 else (400, 3000, -2.2, 1.0)
    main(reps, M, a, b)
