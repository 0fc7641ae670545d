"""`python -m tasks.dedup`: `make install` runs it to compile and cache the dedup kernels before the first real run."""

from tasks.dedup.stage import warm_up

warm_up()
