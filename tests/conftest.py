"""Test set-up: 8 virtual CPU devices, so sharding is tested in-process."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # scipy fits: one BLAS thread is faster on 2 shared cores


import jax  # noqa: E402 -- after the environment is set
import pytest  # noqa: E402

# One persistent compilation cache for the session's in-process runs: the many tests that train the same tiny shapes
# compile each program once (the CLI runs have the repository's .cache/jax, as a user's).
jax.config.update(
    "jax_compilation_cache_dir", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache", "jax-tests")
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A small BPE tokenizer (trained on SynBio text) for the trainer tests (tiny configs use the synthetic web)."""
    from data_gen.synbio import Population, SynBio
    from data_gen.synbio_tokens import ByteTokenizer
    from data_gen.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("data")
    synbio = SynBio(Population(200, 0), ByteTokenizer(), 0)
    train_bpe([synbio.render_text(p, 0) for p in range(200)], 512, root / "tokenizer.json")
    return str(root)


@pytest.fixture(scope="session")
def cli():
    """`python -m <module> <args>` forked from one warm interpreter (tests/cli_server.py), with one CPU device: for
    the tests of command-line refusals, whose imports would otherwise cost ~2.5 s a case."""
    from mixlab import host
    from tests.processes import CliServer

    # tuned_env: the malloc tunable that mixlab.main would re-exec itself to get, which a forked child cannot
    with CliServer({**host.tuned_env(), "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}) as server:
        yield server


@pytest.fixture()
def fake_packages(tmp_path, monkeypatch):
    """A data dir whose pinned Debian packages (data_gen.debian_docs.PACKAGES) are two tiny fake .debs, cached."""
    from tests.fake_debs import install_fake_packages

    install_fake_packages(tmp_path / "data", monkeypatch)
    return tmp_path / "data"


def pytest_collection_modifyitems(config, items) -> None:
    """Under `--dist worksteal` each of the n workers gets one contiguous share of the collection, in order, and
    steals from the others' tails: the slow tests (each a minute or more) lead the shares, so that none starts last."""
    n = getattr(config, "workerinput", {}).get("workercount", 1)  # set in each xdist worker, which collects
    if n < 2:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    bounds = [len(items) * w // n for w in range(n + 1)]
    shares, taken = [], 0
    for w in range(n):
        lead = slow[w::n]
        fill = bounds[w + 1] - bounds[w] - len(lead)
        shares += [*lead, *rest[taken : taken + fill]]
        taken += fill
    items[:] = shares
