"""The model: MPT-Instruct prompt, settings, loading, the MLflow-free ``Generator`` core,
the reference PyFunc wrapper, its signatures and the tiny offline snapshot.

Nothing is imported here, so ``harness.model.prompt`` stays free of torch and MLflow.
"""
