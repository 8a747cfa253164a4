"""Which variance gives honest intervals for domain (per-region) area estimates? (issue 17)

Run:  python benchmarks/domain_variance.py --seeds 100-199 --samples 40
      (development seeds: --seeds 0-24; the table in BENCHMARKS.md uses 100-199)

Simulates populations directly (SYNTHETIC; no imagery): every pixel has a map class (the
strata: coca, confuser, other, forest), a reference class (coca or not) and at most one
domain (region). Regions hold 10-500 ha of coca; coca is rare, the forest stratum holds
about 1.5 million pixels, and the map omits coca into the confuser and forest strata. The
sample is stratified by map class only (``estimator sample --strata class``), allocated as
``estimator.stats.area.allocate`` does (50 per stratum at least, the rest proportional), drawn
without replacement (multivariate hypergeometric per stratum, which is exactly a stratified
random sample of pixels when only the cell counts matter). Each region's coca area is
estimated with Stehman's (2014) domain estimator and every candidate interval is checked
against the true area.

Two worlds: ``scattered`` (each region omits a similar share of its coca, 20-40 %, spread
over the confuser and forest strata) and ``clustered`` (omission differs from region to
region, 10-80 %, and may land mostly in forest), the harder case for a small region.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from estimator.stats.area import UNCAPPED_FROM_UNITS, allocate, effective_n_interval

Z = 1.96
PX_HA = 0.01  # 10 m pixels
#: Coca per region (ha) before a +-15 % jitter; the remainder of the map is one more "region".
REGION_COCA_HA = (10.0, 18.0, 35.0, 60.0, 120.0, 200.0, 320.0, 480.0)
SIZE_CLASSES = ((10, 30), (30, 100), (100, 300), (300, 501))
STRATA = ("coca", "confuser", "other", "forest")
CHOSEN = f"Jeffreys, uncapped from {UNCAPPED_FROM_UNITS} units (chosen)"
CANDIDATES = (
    "textbook",
    "adjusted (x+1)/(n+2)",
    "share of units",
    "share of pixels",
    "Wilson, effective n",
    "Jeffreys, effective n capped",
    "Jeffreys, effective n uncapped",
    CHOSEN,
    "bootstrap in strata",
    "gamma, max weight",
    "gamma, domain mean weight",
    "Jeffreys per stratum",
)


def share_fraction(x: np.ndarray, n: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Cell proportion for the variance with a pseudo-count in proportion to the domain's
    share s of the stratum: x / n, or (x + s) / (n + s + 1) where the stratum's sample shows
    none (or only) of the domain's class: Beta(s, 1) updated with x of n, which is the
    (x + 1) / (n + 2) adjustment when the domain is the whole stratum (s = 1)."""
    frac = x / n
    edge = (x == 0) | (x == n)
    return np.where(edge, (x + share) / (n + share + 1), frac)


@dataclass(frozen=True)
class Population:
    N: np.ndarray
    """(stratum, region, coca) pixel counts; region index D is the rest of the map."""
    truth_ha: np.ndarray
    """True coca per region (ha), regions 0..D-1."""


def population(rng: np.random.Generator, world: str) -> Population:
    D = len(REGION_COCA_HA)
    coca_ha = np.clip(np.array([*REGION_COCA_HA, 450.0]) * rng.uniform(0.85, 1.15, D + 1), 10, 500)
    T = np.round(coca_ha / PX_HA)
    density = np.concatenate([rng.uniform(0.03, 0.12, D), [0.05]])
    land = T / density
    if world == "scattered":
        mapped = rng.uniform(0.6, 0.8, D + 1)
        to_forest = np.full(D + 1, 0.45)
    else:
        mapped = rng.uniform(0.2, 0.9, D + 1)
        to_forest = rng.uniform(0.1, 0.9, D + 1)
    ua = rng.uniform(0.7, 0.9, D + 1)
    hit = np.round(T * mapped)
    commission = np.round(hit * (1 / ua - 1))
    omitted = T - hit
    om = np.stack([np.zeros(D + 1), omitted * (1 - to_forest) * 0.8, omitted * (1 - to_forest) * 0.2, omitted * to_forest])
    om = np.round(om)
    om[3] = omitted - om[1] - om[2]
    rest = land - hit - commission
    fs = rng.uniform(0.55, 0.8, D + 1)
    size = np.round(np.stack([np.zeros(D + 1), rest * (1 - fs) * 0.65, rest * (1 - fs) * 0.35, rest * fs]))
    N = np.zeros((4, D + 1, 2))
    N[0, :, 1], N[0, :, 0] = hit, commission
    N[1:, :, 1] = om[1:]
    N[1:, :, 0] = np.maximum(size[1:] - om[1:], 0)
    return Population(N.astype(np.int64), N[:, :D, 1].sum(axis=0) * PX_HA)


def draw(rng: np.random.Generator, pop: Population, n: int, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit counts per replicate: coca-in-region x (reps, H, D+1), units-in-region m, and n_h."""
    Nh = pop.N.sum(axis=(1, 2))
    nh = allocate(Nh, n, 50)
    H, D1 = pop.N.shape[:2]
    x = np.zeros((reps, H, D1))
    m = np.zeros((reps, H, D1))
    for h in range(H):
        c = rng.multivariate_hypergeometric(pop.N[h].ravel(), int(nh[h]), size=reps, method="marginals").reshape(reps, D1, 2)
        x[:, h], m[:, h] = c[..., 1], c.sum(axis=-1)
    return x, m, nh.astype(float)


def wald(est: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    se = np.sqrt(var)
    return np.maximum(est - Z * se, 0.0), est + Z * se


def intervals(rng: np.random.Generator, pop: Population, x: np.ndarray, m: np.ndarray, nh: np.ndarray, boot: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per candidate: (estimate, low, high) in ha, arrays (reps, D) for the D regions."""
    Nh = pop.N.sum(axis=(1, 2)).astype(float)
    D = pop.truth_ha.size
    x, m = x[..., :D], m[..., :D]
    N_ = Nh[None, :, None]
    n_ = nh[None, :, None]
    fpc = 1 - n_ / N_
    est = (N_ * x / n_).sum(axis=1) * PX_HA

    def var_of(frac: np.ndarray) -> np.ndarray:
        return (N_**2 * fpc * frac * (1 - frac) / (n_ - 1)).sum(axis=1) * PX_HA**2

    p = x / n_
    flat = (x == 0) | (x == n_)
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    textbook = var_of(p)
    out["textbook"] = (est, *wald(est, textbook))
    out["adjusted (x+1)/(n+2)"] = (est, *wald(est, var_of(np.where(flat, (x + 1) / (n_ + 2), p))))
    out["share of units"] = (est, *wald(est, var_of(share_fraction(x, n_, m / n_))))
    pix_share = (pop.N[:, :D].sum(axis=-1) / Nh[:, None])[None]
    out["share of pixels"] = (est, *wald(est, var_of(share_fraction(x, n_, np.broadcast_to(pix_share, x.shape)))))

    # Korn & Graubard (1998) style: an effective sample size n* = p(1-p)/v for the domain
    # total as a share of the population, then a binomial interval at n*.
    N = Nh.sum()
    ptot = est / PX_HA / N
    v = textbook / PX_HA**2 / N**2
    n_all = nh.sum()
    neff = np.where(v > 0, ptot * (1 - ptot) / np.where(v > 0, v, 1.0), n_all)
    neff = np.minimum(neff, n_all)
    center = (ptot + Z**2 / (2 * neff)) / (1 + Z**2 / neff)
    half = Z * np.sqrt(ptot * (1 - ptot) / neff + Z**2 / (4 * neff**2)) / (1 + Z**2 / neff)
    out["Wilson, effective n"] = (est, np.maximum(center - half, 0) * N * PX_HA, (center + half) * N * PX_HA)
    # Jeffreys at the effective n, capped at n (Korn and Graubard), never capped, and the
    # implemented default (estimator.stats.area.effective_n_interval): capped until the region's
    # sample holds UNCAPPED_FROM_UNITS units of coca.
    se_ha = np.sqrt(textbook)
    out["Jeffreys, effective n capped"] = (est, *effective_n_interval(est, se_ha, N * PX_HA, int(n_all), Z))
    out["Jeffreys, effective n uncapped"] = (est, *effective_n_interval(est, se_ha, N * PX_HA, int(n_all), Z, positives=np.full(est.shape, np.inf)))
    out[CHOSEN] = (est, *effective_n_interval(est, se_ha, N * PX_HA, int(n_all), Z, positives=x.sum(axis=1)))

    # Bootstrap units within strata: the domain indicator is 0/1, so resampling n_h units of a
    # stratum draws Binomial(n_h, x/n_h) coca-in-region units.
    b = rng.binomial(np.broadcast_to(nh[None, None, :, None], (boot, *x.shape)).astype(np.int64), np.broadcast_to(p, (boot, *x.shape)))
    tb = (N_[None] * b / n_[None]).sum(axis=2) * PX_HA
    out["bootstrap in strata"] = (est, np.quantile(tb, 0.025, axis=0), np.quantile(tb, 0.975, axis=0))

    # Fay & Feuer (1997) gamma interval for a weighted sum of counts; the upper bound adds one
    # pseudo-unit of weight w*.
    w = (N_ / n_)[..., 0][..., None] * np.ones_like(x)  # (1, H, 1) -> (reps, H, D)
    Y = est / PX_HA
    vv = textbook / PX_HA**2
    for name, wstar in (
        ("gamma, max weight", np.broadcast_to(w.max(axis=1), Y.shape)),
        ("gamma, domain mean weight", np.where(m.sum(axis=1) > 0, (w * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1), w.max(axis=1))),
    ):
        pos = (Y > 0) & (vv > 0)
        shape, scale = np.where(pos, Y**2 / np.where(pos, vv, 1.0), 1.0), np.where(pos, vv / np.where(pos, Y, 1.0), 1.0)
        lo_g = np.where(pos, stats.gamma.ppf(0.025, shape, scale=scale), np.where(Y > 0, Y, 0.0))
        hi_g = stats.gamma.ppf(0.975, (Y + wstar) ** 2 / (vv + wstar**2), scale=(vv + wstar**2) / (Y + wstar))
        out[name] = (est, lo_g * PX_HA, hi_g * PX_HA)

    # Jeffreys posterior per stratum, Beta(x + 1/2, n - x + 1/2), summed by simulation.
    post = rng.beta(np.broadcast_to(x + 0.5, (boot, *x.shape)), np.broadcast_to(n_ - x + 0.5, (boot, *x.shape)))
    tj = (N_[None] * post).sum(axis=2) * PX_HA
    out["Jeffreys per stratum"] = (est, np.quantile(tj, 0.025, axis=0), np.quantile(tj, 0.975, axis=0))
    return out


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b or a) + 1))


def run(seeds: list[int], ns: list[int], worlds: list[str], samples: int, boot: int) -> dict:
    """Coverage and mean half-width per (world, n, candidate, size class)."""
    acc: dict = {}
    forest: list[float] = []
    for world in worlds:
        for seed in seeds:
            rng = np.random.default_rng([seed, 17])
            pop = population(rng, world)
            forest.append(float(pop.N[3].sum()))
            cls = np.searchsorted([c[1] for c in SIZE_CLASSES], pop.truth_ha, side="right")
            for n in ns:
                x, m, nh = draw(rng, pop, n, samples)
                for name, (_est, lo, hi) in intervals(rng, pop, x, m, nh, boot).items():
                    cover = (lo <= pop.truth_ha) & (pop.truth_ha <= hi)
                    half = (hi - lo) / 2
                    for k in range(len(SIZE_CLASSES)):
                        sel = cls == k
                        a = acc.setdefault((world, n, name, k), [0, 0, 0.0, 0, 0])
                        a[0] += int(cover[:, sel].sum())
                        a[1] += int(cover[:, sel].size)
                        a[2] += float(half[:, sel].sum())
                        a[3] += int((hi[:, sel] < pop.truth_ha[sel]).sum())  # interval entirely below the truth
                        a[4] += int((lo[:, sel] > pop.truth_ha[sel]).sum())
    acc["forest_pixels_median"] = float(np.median(forest))
    return acc


def table(acc: dict, worlds: list[str], ns: list[int]) -> str:
    heads = [f"{a}-{min(b, 500)} ha" for a, b in SIZE_CLASSES]
    lines = []
    for world in worlds:
        for n in ns:
            counts = ", ".join(str(acc[(world, n, CANDIDATES[0], k)][1]) for k in range(len(SIZE_CLASSES)))
            lines += [f"\n{world} world, n = {n}: coverage % (mean half-width ha) by true coca per region ({counts} region-samples)", ""]
            lines += ["| candidate | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
            for name in CANDIDATES:
                cells = []
                for k in range(len(SIZE_CLASSES)):
                    c, t, h, _, _ = acc[(world, n, name, k)]
                    cells.append(f"{100 * c / t:.1f} ({h / t:.1f})")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            miss = [acc[(world, n, CHOSEN, k)] for k in range(len(SIZE_CLASSES))]
            lines.append("")
            lines.append(f"{CHOSEN}: misses entirely below the truth / all misses, by size class: " + ", ".join(f"{a[3]}/{a[3] + a[4]}" for a in miss))
    cells = [(w, n, k) for w in worlds for n in ns for k in range(len(SIZE_CLASSES))]
    lines += ["", f"Summary over all {len(cells)} (world, n, size class) cells", ""]
    lines += ["| candidate | lowest coverage % | highest coverage % | cells within 93-97 % | cells below 93 % | mean half-width, 10-30 ha (ha) | mean half-width, 300-500 ha (ha) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name in CANDIDATES:
        cov = [100 * acc[(w, n, name, k)][0] / acc[(w, n, name, k)][1] for w, n, k in cells]
        hw = [[acc[(w, n, name, k)][2] / acc[(w, n, name, k)][1] for w in worlds for n in ns] for k in (0, len(SIZE_CLASSES) - 1)]
        lines.append(
            f"| {name} | {min(cov):.1f} | {max(cov):.1f} | {sum(93 <= c <= 97 for c in cov)} | {sum(c < 93 for c in cov)} | "
            f"{np.mean(hw[0]):.1f} | {np.mean(hw[1]):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="100-199", help="population seeds, e.g. 0-24 (development) or 100-199 (report)")
    ap.add_argument("--n", default="500,1500,3000")
    ap.add_argument("--worlds", default="scattered,clustered")
    ap.add_argument("--samples", type=int, default=40, help="samples drawn per population")
    ap.add_argument("--boot", type=int, default=400, help="bootstrap replicates per sample")
    args = ap.parse_args()
    seeds, ns, worlds = parse_seeds(args.seeds), [int(v) for v in args.n.split(",")], args.worlds.split(",")
    t0 = time.perf_counter()
    acc = run(seeds, ns, worlds, args.samples, args.boot)
    print(
        f"SYNTHETIC populations (simulated directly, no imagery); seeds {args.seeds}, {args.samples} samples each; "
        f"median forest stratum {acc['forest_pixels_median'] / 1e6:.2f} M pixels; nominal 95 %"
    )
    print(table(acc, worlds, ns))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
