# slurmbox verify: computes pi with MPI the way the article's job does (midpoint rule
# over 1/(1+x^2)), each rank taking every size-th interval, reduced on rank 0. Rank 0
# also reports which hosts took part, so verify can check the job spanned every node.
import socket

import numpy as np
from mpi4py import MPI

INTERVALS = 10_000_000

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()

n = comm.bcast(INTERVALS if rank == 0 else None, root=0)
h = 1.0 / n
local = 0.0
for start in range(rank, n, size * 1_000_000):
    i = np.arange(start, min(start + size * 1_000_000, n), size, dtype=np.float64)
    x = h * (i + 0.5)
    local += float(np.sum(4.0 / (1.0 + x * x)))
total = comm.reduce(local * h, op=MPI.SUM, root=0)
hosts = comm.gather(socket.gethostname(), root=0)
if rank == 0:
    print(f"ranks={size}")
    print(f"hosts={','.join(sorted(set(hosts)))}")
    print(f"pi={total:.16f}")
