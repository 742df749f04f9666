"""The demo: a real small model (cars from vega_datasets, trained with scikit-learn at start)
serving a synthetic request stream, injecting the failures that matter on a schedule."""
