"""Demo: SNN altitude control of a blimp, evolved with CMA-ES to mimic PID, bit-exact on the core.

Modules: plant (identified blimp model), pid (baseline), scenarios, metrics, closed_loop, snn
(architecture, genome -> CoreImage), datasets, fitness (batch evaluation on the golden model),
train (CMA-ES), runners (golden / board / RTL replay), snn_controller, evaluation, plots, cli.
docs/blimp.md explains the design.
"""
