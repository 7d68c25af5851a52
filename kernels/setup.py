"""The reasoner's fused CPU kernel, built ahead of time against the installed torch.

    pip install --no-build-isolation ./kernels     (after torch; `make install` does it)

Nothing is compiled when TOFU is imported: without this package, the reasoner runs its
torch-operator path (the same scores, slower on the CPU).
"""
# -fopenmp: at::parallel_for runs on OpenMP; the loader maps this module's libgomp.so.1 to the one torch
# already loaded (the same soname), so the kernel and torch share one thread pool.
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

setup(
    name="tofu-kernels",
    version="0.1.0",
    description="Fused gather-multiply-sum message passing for TOFU's reasoner, and its gradients (CPU)",
    packages=["tofu_kernels"],
    ext_modules=[CppExtension("tofu_kernels._fused", ["tofu_kernels/fused.cpp"],
                              extra_compile_args=["-O3", "-fopenmp"], extra_link_args=["-fopenmp"])],
    cmdclass={"build_ext": BuildExtension},
)
