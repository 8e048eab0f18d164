"""MACE-specific tests (the conformance suite covers symmetry, forces, stress, padding, ...)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpot
from jaxpot.models import mace as mace_module
from jaxpot.nn.symmetric_contraction import (
    SymmetricContraction,
    coupling_path_tensors,
    monomial_tables,
    symmetric_contraction_reference,
)
from conftest import ethanol, make_potential


@pytest.mark.parametrize("max_ell, ells_out", [(2, (0, 1, 2)), (3, (0, 1))])
def test_sparse_symmetric_contraction_matches_dense(max_ell, ells_out):
    """The sparse monomial form equals sum_nu W[z] . U . a^nu with the dense U tensors."""
    num_species, channels = 3, 5
    a = jax.random.normal(jax.random.PRNGKey(0), (7, (max_ell + 1) ** 2, channels), jnp.float64)
    species = np.array([0, 1, 2, 0, 1, 2, 2])
    module = SymmetricContraction(max_ell, ells_out, 3, num_species, weights="independent")
    params = module.init(jax.random.PRNGKey(1), a, species)
    out = module.apply(params, a, species)
    for ell in ells_out:
        weights = {nu: params["params"][f"weights_{ell}_{nu}"] for nu in (1, 2, 3)}
        ref = symmetric_contraction_reference(a, weights, species, max_ell, ell, 3)
        np.testing.assert_allclose(np.asarray(out[ell]), ref, atol=1e-12 * np.abs(ref).max())


def test_path_weights_match_coupling_paths():
    """``weights="paths"``: sum_eta W_eta[z] C_eta . a^nu over mace-torch's coupling paths, evaluated
    by brute force from the (unsymmetrised) path tensors; mace-torch's path counts."""
    max_ell, ells_out, num_species, channels = 3, (0, 1), 2, 4
    a = jax.random.normal(jax.random.PRNGKey(0), (5, (max_ell + 1) ** 2, channels), jnp.float64)
    species = np.array([0, 1, 1, 0, 1])
    module = SymmetricContraction(max_ell, ells_out, 3, num_species, weights="paths")
    params = module.init(jax.random.PRNGKey(1), a, species)["params"]
    assert {name: w.shape[1] for name, w in params.items()} == {
        "path_weights_0_1": 1, "path_weights_0_2": 4, "path_weights_0_3": 23,
        "path_weights_1_1": 1, "path_weights_1_2": 6, "path_weights_1_3": 51,
    }  # mace-torch 0.3.16's weights per element and channel at l_max 3, correlation 3
    out = module.apply({"params": params}, a, species)
    x = np.asarray(a)
    letters = "abd"
    for ell in ells_out:
        ref = 0.0
        for nu in (1, 2, 3):
            paths = coupling_path_tensors(max_ell, ell, nu)  # [K] + [D]*nu + [2L+1]
            idx = letters[:nu]
            products = np.einsum(f"K{idx}M," + ",".join(f"n{c}C" for c in idx) + "->nKMC", paths, *([x] * nu))
            w = np.asarray(params[f"path_weights_{ell}_{nu}"])[species]  # [N, K, C]
            ref = ref + np.einsum("nKMC,nKC->nMC", products, w)
        np.testing.assert_allclose(np.asarray(out[ell]), ref, atol=1e-12 * np.abs(ref).max())
    with pytest.raises(ValueError, match="'independent' or 'paths'"):
        SymmetricContraction(max_ell, ells_out, 3, num_species, weights="dense").init(jax.random.PRNGKey(1), a, species)


def test_symmetric_contraction_sizes():
    """Monomials kept for l_max 3, correlation 3 (shared/bench/mace_roofline.md: 77 cubic monomials
    for 0e, 278 more for 1o) and the dimensions of the symmetric coupling spaces."""
    monomials, blocks = monomial_tables(3, (0,), 3)
    assert [m.shape[0] for m in monomials] == [1, 16, 77]
    monomials, blocks = monomial_tables(3, (0, 1), 3)
    assert monomials[2].shape[0] == 355
    # symmetric couplings: 0e from (l, l) pairs, 1o from (0,1), (1,2), (2,3)
    assert blocks[(2, 0)].shape[-1] == 4 and blocks[(2, 1)].shape[-1] == 3


def test_energy_is_sum_of_layer_readouts():
    """E_i = sum_t E_i^t with weight 1 per layer, as mace-torch (eq. 13), plus one learned bias."""
    pot = make_potential("mace", "float64")
    g = pot.prepare(pot.graph(ethanol()))
    feats = pot.module.apply(pot.params, g, method=jaxpot.heads.AtomisticModel.features)
    n_layers = pot.hparams.get("num_interactions", 2)
    assert str(feats.irreps).startswith(f"{n_layers}x0e")
    assert pot.readout["sum_scalars"] is True
    assert jax.tree_util.tree_structure(pot.params["params"]["energy_head"]) == jax.tree_util.tree_structure({"bias": 0})
    params = jax.tree_util.tree_map(lambda x: x, pot.params)
    params["params"]["energy_head"]["bias"] = jnp.asarray(0.25, jnp.float64)
    atomic = pot.module.apply(params, g)
    expected = feats.array[:, :n_layers].sum(-1) + 0.25
    np.testing.assert_allclose(np.asarray(atomic), np.asarray(expected), atol=1e-12)


def test_mace_saved_with_learned_layer_factors_loads(tmp_path):
    """Models saved before the summing head (readout without ``sum_scalars``) keep their
    learned linear head over the per-layer readouts and load with the energies they had."""
    old = jaxpot.Potential.create(
        "mace", [1, 6, 8], 5.0, seed=0, dtype="float64", readout={"hidden": [], "activation": "silu"},
        **jaxpot.models.small_hyperparameters("mace"),
    )
    assert sorted(old.params["params"]["energy_head"]["mlp"]["dense_0"]) == ["bias", "kernel"]
    old.save(tmp_path / "m")
    loaded = jaxpot.load(tmp_path / "m")
    assert "sum_scalars" not in loaded.readout
    atoms = ethanol()
    assert loaded.calculate(atoms)["energy"] == old.calculate(atoms)["energy"]


def test_chunked_messages_equal_single_chunk(monkeypatch):
    """The edge sum in chunks (scan + checkpoint) gives the same energy and forces as one chunk."""
    pot = make_potential("mace", "float64")
    atoms = ethanol()
    g = pot.prepare(pot.graph(atoms))
    e1, f1 = jax.jit(pot.energy_and_forces_fn)(pot.params, g)
    monkeypatch.setattr(mace_module, "EDGE_CHUNK", 16)
    e2, f2 = jax.jit(pot.energy_and_forces_fn)(pot.params, g)
    assert g.senders.shape[0] > 16
    np.testing.assert_allclose(np.asarray(e2), np.asarray(e1), atol=1e-10)
    np.testing.assert_allclose(np.asarray(f2), np.asarray(f1), atol=1e-10)


def test_parameter_shapes_follow_mace_torch():
    """Layer widths as mace-torch 0.3.16's ScaleShiftMACE at the same hyperparameters (conv-TP
    paths 4 and 10, radial MLP 8-64-64-64, per-element skip_tp, last layer scalars only)."""
    module = jaxpot.models.build("mace", num_species=1, cutoff=5.0)
    g = jaxpot.potential._dummy_graph(1)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jax.tree_util.tree_map(jnp.asarray, g))
    p = shapes["params"]
    assert p["interaction_0"]["radial_3"].shape == (64, 4 * 128)
    assert p["interaction_1"]["radial_3"].shape == (64, 10 * 128)
    assert p["interaction_0"]["radial_0"].shape == (8, 64)
    assert sorted(p["product_linear_1"]) == ["weight_0"]
    assert p["interaction_1"]["linear_1"].shape == (3 * 128, 128)  # 1o paths: 0e x 1o, 1o x 0e, 1o x 2e


def test_default_product_weights_are_mace_torchs_and_old_saves_load(tmp_path):
    """The default parametrises the product basis per coupling path (mace-torch's parameter
    count); a model saved in format 1, before the option existed, loads with the weights it had."""
    import json

    module = jaxpot.models.build("mace", num_species=3, cutoff=5.0, hidden_irreps="32x0e+32x1o")
    g = jax.tree_util.tree_map(jnp.asarray, jaxpot.potential._dummy_graph(3))
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), g)
    # mace-torch 0.3.16's MACE for H, C, O at these hyperparameters has 93,520 parameters
    assert sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes)) == 93_520

    old = make_potential("mace", "float64", product_weights="independent")
    old.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["format_version"] = 1
    del config["hparams"]["product_weights"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = jaxpot.load(tmp_path / "m")
    assert loaded.hparams["product_weights"] == "independent"
    atoms = ethanol()
    assert loaded.calculate(atoms)["energy"] == old.calculate(atoms)["energy"]


@pytest.mark.parametrize(
    "hparams, match",
    [
        ({"hidden_irreps": "8x0e + 4x1o"}, "one multiplicity"),
        ({"hidden_irreps": "8x0e + 8x1e"}, "natural parity"),
        ({"MLP_irreps": "4x1o"}, "must be scalars"),
        ({"r_max": 6.0}, "exceeds the neighbour-list cutoff"),
        ({"correlation": 0}, "correlation must be at least 1"),
    ],
)
def test_bad_hyperparameters(hparams, match):
    with pytest.raises(ValueError, match=match):
        make_potential("mace", "float64", **hparams)
