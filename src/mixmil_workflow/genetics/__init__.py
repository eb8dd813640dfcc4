"""Genetics branch (paper Section 4.3): OneK1K cells, genotypes and cis-eQTL variants to MixMIL labels.

Modules are imported by name (``mixmil_workflow.genetics.demo``); nothing is imported here, so the
torch-free data jobs stay torch-free.
"""
