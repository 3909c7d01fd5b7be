"""mixlab: a JAX/Flax laboratory for data-mixing scaling laws."""

from setuptools import find_packages, setup

setup(
    name="mixlab",
    version="0.1.0",
    description="Data-mixing phase transitions in knowledge acquisition: data, training, sweeps and analysis.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mixlab*", "data_gen*", "experiments*", "analysis*"]),
    package_data={
        "data_gen": ["fields/*.txt", "corpus/*.xz", "corpus/*.json", "corpus/NOTICE", "corpus/copyright/*"],
        "analysis": ["notebooks/*.ipynb"],
    },
    install_requires=[
        "jax>=0.7",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "tensorflow-datasets>=4.9.8",
        "numpy>=1.26",
        "scipy>=1.13",
        "seaborn>=0.13",
        "absl-py>=2.1",
        "ml_collections>=1.0",
        "tokenizers>=0.20",
        "pandas>=2.2",
        "pyarrow>=16",
        "tqdm>=4.66",
        "tensorboardX>=2.6",
        "threadpoolctl>=3.5",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "hypothesis>=6.100",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ruff>=0.6",
            "psignifit==4.3",
        ],
        "crosscheck": ["psignifit==4.3"],  # analysis.crosscheck (GPL-3; needs only scipy and matplotlib)
        "gpu": ["jax[cuda12]"],
    },
)
