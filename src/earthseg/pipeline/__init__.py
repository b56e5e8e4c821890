"""`earthseg pipeline`: the run config, the run folder and its resume rule, the stages,
and the backends they run on (local containers or this machine, SageMaker)."""
