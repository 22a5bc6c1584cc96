"""Demo: SNN altitude control of a blimp, evolved with CMA-ES to mimic PID, bit-exact on the core.

Modules: plant (identified blimp model), pid (baseline), scenarios, metrics, closed_loop, snn
(architecture, genome -> CoreImage), datasets, fitness (batch evaluation on the golden model),
train (CMA-ES), runners (golden / board / RTL, rtl_step_bridge), snn_controller, evaluation, plots, cli;
the standalone controller: fixed_point (integer encoder/decoder), standalone_top (the logic; it boots
through boards/boot_loader.py), standalone (ROM, simulation check, bitstream), standalone_tb (its
cocotb closed loop).
docs/blimp.md explains the design.
"""
