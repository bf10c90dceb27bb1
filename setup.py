from pathlib import Path

from setuptools import setup

setup(
    name="minigan",
    version="0.2.0",
    description="A GAN engine on NumPy and CuPy with hand-written, gradient-checked layers",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # kernels/ sits beside minigan/ but installs as minigan.kernels: a top-level package
    # named `kernels` would overwrite the files of an unrelated PyPI distribution.
    packages=["minigan", "minigan.layers", "minigan.cures", "minigan.kernels"],
    package_dir={"minigan.kernels": "kernels"},
    package_data={"minigan": ["weights/*.npz"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "matplotlib>=3.7", "threadpoolctl>=3"],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6.80"],
        "cuda12": ["cupy-cuda12x>=13"],
        "cuda13": ["cupy-cuda13x>=13"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
