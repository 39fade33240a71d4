"""disentanglement_lib's canonical checks, on token positions as codes and attributes as factors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probe.probes import disentanglement as dis
from probe.probes import run_probes

# disentanglement_lib's IdentityObservationsData: 10 factors with 10 values each.
NUM_FACTORS, NUM_VALUES = 10, 10


def _factors(m: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_VALUES, size=(m, NUM_FACTORS))


def _metrics(tokens: np.ndarray, factors: np.ndarray, **kw) -> dict[str, float]:
    attrs = pd.DataFrame({f"f{j}": factors[:, j] for j in range(factors.shape[1])})
    res = run_probes(tokens, attrs, permutations=20, progress=False, probes=("mi", "disentanglement"), **kw)
    d = res.disentanglement
    return dict(zip(d.loc[d.scope == "overall", "metric"], d.loc[d.scope == "overall", "value"]))


def _shuffle_codes_per_sample(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """disentanglement_lib's 'bad' representation: each sample's codes in a random order."""
    rng = np.random.default_rng(seed)
    return np.take_along_axis(x, rng.random(x.shape).argsort(1), axis=1)


# ---------------------------------------------------------------- closed forms (importance / MI matrices)
def test_dci_closed_forms() -> None:
    diag = np.diag(5.0 * np.ones(5))
    assert dis.dci_disentanglement(diag) == pytest.approx(1.0)
    assert dis.dci_completeness(diag) == pytest.approx(1.0)
    assert dis.dci_disentanglement(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(1.0)
    assert dis.dci_disentanglement(np.zeros((10, 10))) == pytest.approx(0.0)
    assert dis.dci_completeness(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-7)
    one_code_two_factors = np.hstack([diag, diag])
    assert dis.dci_disentanglement(one_code_two_factors) == pytest.approx(1.0 - np.log(2) / np.log(10), rel=1e-9)
    assert dis.dci_completeness(one_code_two_factors) == pytest.approx(1.0)
    redundant = np.vstack([diag, diag])
    assert dis.dci_disentanglement(redundant) == pytest.approx(1.0)
    assert dis.dci_completeness(redundant) == pytest.approx(1.0 - np.log(2) / np.log(10), rel=1e-9)


def test_modularity_and_gap_closed_forms() -> None:
    diag = np.diag(5.0 * np.ones(5))
    assert dis.modularity(diag) == pytest.approx(1.0)
    assert dis.modularity(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) == pytest.approx(2.0 / 3.0)
    assert dis.modularity(np.zeros((10, 10))) == pytest.approx(0.0)
    assert dis.modularity(np.hstack([diag, diag])) == pytest.approx(1.0 - 1.0 / 9.0)
    mi = np.array([[0.9, 0.1], [0.2, 0.5], [0.0, 0.4]])
    assert dis.mig(mi, np.array([1.0, 0.5])) == pytest.approx(np.mean([(0.9 - 0.2) / 1.0, (0.5 - 0.4) / 0.5]))
    assert dis.sap(mi) == pytest.approx(np.mean([0.9 - 0.2, 0.5 - 0.4]))


# ---------------------------------------------------------------- end to end through run_probes
def test_mig_modularity_sap_identity_constant_duplicated() -> None:
    f = _factors(3000)
    ident = _metrics(f, f)
    assert 0.9 <= ident["mig"] <= 1.0
    assert 0.9 <= ident["modularity"] <= 1.0
    assert 0.8 <= ident["sap"] <= 1.0  # discrete factors: top accuracy 1, runner-up ~ 1/10
    # exact known answers. Constant codes carry no information: every code-factor MI and every per-code
    # accuracy gap is 0, and disentanglement_lib sets a code's modularity to 0 where its largest MI is 0.
    const = _metrics(np.zeros_like(f), f)
    for metric in ("mig", "modularity", "sap", "mig_adjusted", "modularity_adjusted"):
        assert const[metric] == 0.0, (metric, const[metric])
    # Duplicated codes: each factor's two best codes are identical copies, so the MI gap (MIG) and the
    # accuracy gap (SAP) are exactly 0; each code still depends on one factor only, so modularity is the
    # identity's (its MI rows are the identity's, twice).
    dup = _metrics(np.hstack([f, f]), f)
    for metric in ("mig", "sap", "mig_adjusted"):
        assert dup[metric] == 0.0, (metric, dup[metric])
    assert dup["modularity"] == ident["modularity"]
    assert dup["modularity_adjusted"] == pytest.approx(ident["modularity_adjusted"], abs=1e-6)


def test_modularity_low_when_codes_shuffled_per_sample() -> None:
    f = _factors(20000, seed=1)
    bad = _metrics(_shuffle_codes_per_sample(f), f)
    assert 0.0 <= bad["modularity"] <= 0.2
    assert bad["mig"] <= 0.1


@pytest.mark.parametrize("importance", ["linear", "gbt"])
def test_dci_identity_high_shuffled_low_duplicated(importance: str) -> None:
    from probe.probes import ProbeConfig

    n_factors, n_values = (10, 10) if importance == "linear" else (3, 3)  # GBT is slow: fewer classes
    rng = np.random.default_rng(0)
    m = 900 if importance == "gbt" else 3000
    f = rng.integers(0, n_values, size=(m, n_factors))
    codebook = np.eye(n_values, dtype=np.float32)  # each code's embedding is its one-hot: an identity representation
    attrs = pd.DataFrame({f"f{j}": f[:, j] for j in range(n_factors)})

    def dci(tokens: np.ndarray) -> dict[str, float]:
        cfg = ProbeConfig(permutations=0, probes=("disentanglement",), dci_importance=importance,
                          dci_num_train=600, dci_num_test=300)
        d = run_probes(tokens, attrs, codebook=codebook, progress=False, config=cfg).disentanglement
        d = d[d.scope == "overall"]
        return dict(zip(d.metric, d.value))

    ident = dci(f)
    assert 0.9 <= ident["dci_disentanglement"] <= 1.0
    assert 0.9 <= ident["dci_completeness"] <= 1.0
    assert ident["dci_informativeness_test"] > 0.95
    bad = dci(_shuffle_codes_per_sample(f))
    assert 0.0 <= bad["dci_disentanglement"] <= 0.2
    assert 0.0 <= bad["dci_completeness"] <= 0.2
    dup = dci(np.hstack([f, f]))
    assert 0.9 <= dup["dci_disentanglement"] <= 1.0
    target = 1.0 - np.log(2) / np.log(10)
    assert target - 0.1 <= dup["dci_completeness"] <= target + 0.1


def test_dci_falls_to_chance_on_random_codes_with_a_random_codebook() -> None:
    from probe.probes import ProbeConfig

    rng = np.random.default_rng(0)
    f = _factors(3000, seed=2)
    attrs = pd.DataFrame({f"f{j}": f[:, j] for j in range(NUM_FACTORS)})
    codebook = rng.standard_normal((NUM_VALUES, 16)).astype(np.float32)  # codes embedded as random vectors

    def dci(tokens: np.ndarray) -> dict[str, float]:
        cfg = ProbeConfig(permutations=0, probes=("disentanglement",), dci_num_train=600, dci_num_test=300)
        d = run_probes(tokens, attrs, codebook=codebook, progress=False, config=cfg).disentanglement
        d = d[d.scope == "overall"]
        return dict(zip(d.metric, d.value))

    # the codebook is only an embedding: an identity representation through it is still fully informative
    ident = dci(f)
    assert ident["dci_informativeness_test"] > 0.95
    assert ident["dci_disentanglement"] > 0.9 and ident["dci_completeness"] > 0.9
    # codes drawn independently of the factors: test accuracy at chance (1/10; binomial sd ~0.006 over
    # 10 factors x 300 test rows), importance spread evenly, so D and C near 0
    rand = dci(rng.integers(0, NUM_VALUES, size=f.shape))
    assert rand["dci_informativeness_test"] == pytest.approx(1.0 / NUM_VALUES, abs=0.03)
    assert 0.0 <= rand["dci_disentanglement"] <= 0.05
    assert 0.0 <= rand["dci_completeness"] <= 0.05


def test_disentanglement_table_scopes() -> None:
    f = _factors(1000)
    attrs = pd.DataFrame({f"f{j}": f[:, j] for j in range(3)})
    d = run_probes(f[:, :5], attrs, permutations=10, progress=False, probes=("mi", "disentanglement")).disentanglement
    pos = d[(d.metric == "modularity") & (d.scope == "position")]
    assert sorted(pos.position.astype(int)) == list(range(5))
    per_attr = d[(d.metric == "mig") & (d.scope == "attribute")]
    assert set(per_attr.attribute) == {"f0", "f1", "f2"}
    assert d.loc[(d.metric == "mig") & (d.scope == "overall"), "value"].item() == pytest.approx(per_attr.value.mean())
