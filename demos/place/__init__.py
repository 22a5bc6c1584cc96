"""Visual place recognition with ensembles of compact, region-specific SNN modules (VPRSNN on cores).

docs/place-recognition.md explains the method, the benchmark and the results. The pieces:
``preprocess`` (resize, grey, patch normalisation), ``dataset`` (PlaceDataset and its splits),
``synthetic`` (the generated route benchmark), ``loaders`` (Nordland, Oxford RobotCar), ``module``
(one module = one core), ``runners`` (golden model or board), ``training`` (the core's STDP, epoch by
epoch), ``ensemble`` (trained modules and their weights file), ``inference`` (assignments,
regularisation, scores), ``metrics`` (Recall@N, PR/AUC, SAD), ``evaluation``, ``throughput``,
``deploy`` (cores on a board, SpiNNaker), ``plots``, ``demo`` and ``cli`` (``spikeforge demo place``).
"""
