"""minerlens workload lab: labelled syscall traces of real miners and real benign programs, run as pods."""
