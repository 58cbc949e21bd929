"""The tasks the front ends run: typed requests over the library, between ``api`` / ``training`` / ``evaluation``
and the command line and the demo (as diffusers' pipelines sit between its models and its users).

A task is a frozen settings record, checked when it is made (one-line :class:`~srvp.errors.SrvpError` messages that
name the command line's options), and a ``run`` function that does the work and returns a typed result; the front
ends only turn their inputs into a record and show the result:

- :mod:`srvp.tasks.predict`: :class:`~srvp.tasks.predict.PredictRequest` -> :class:`~srvp.tasks.predict.PredictOutputs`
  (``srvp predict`` and the demo's page);
- :mod:`srvp.tasks.evaluate`: the paper's evaluation of a model on its test set (``srvp evaluate``);
- :mod:`srvp.tasks.compare`: models trained with equal budgets and compared (``srvp compare``);
- :mod:`srvp.tasks.quickstart`: train, evaluate and animate the small model of the README (``srvp quickstart``).

Nothing is imported here, so that the demo, which needs only the prediction, does not load the trainer.
"""
