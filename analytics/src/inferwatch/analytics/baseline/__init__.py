"""Baselines: the reference a window is compared with, built with pandas from training data (CSV
or Parquet, read in chunks) or from a past window of logs (count tables of a source).

Modules: ``builder`` (the chunked accumulator), ``training`` (CSV/Parquet files and their column
mapping), ``logs`` (a baseline from a past window's count tables), ``codec`` (JSON, summary table),
``store`` (where baselines are kept: a directory of JSON files and the ``inferwatch-baselines``
index; imported on its own, so building a baseline needs no Elasticsearch client).

Decisions (each one matters to a detector):

- Kind: from the config where configured; otherwise inferred from the first chunk holding the
  column: bool -> categorical, other numeric dtypes -> numeric, strings -> text when their mean
  token count exceeds 3 or (with at least 20 values) more than half of them are distinct, else
  categorical; a column with no values -> categorical.
- Categorical values are compared as ``inferwatch.core.contract.category_str`` (the agent's
  rule), through ``sources.tables.category_str``, which turns numpy scalars into Python values
  first (pandas widens int columns with nulls to float: 4.0 still reads ``"4"``).
  CSV files are read with every configured categorical/text column as text, exactly as written
  (so ``"007"`` stays ``"007"``), except that a categorical ``"4.0"`` becomes ``"4"`` (the rule
  above; pandas writes an int column with nulls that way).
- Nulls: null, NaN and (for numeric features) values that are not numbers, as the agent turns
  those into null.
- ``unseen_rate``: Good-Turing, N1/N over the baseline's own counts (N1 = values seen exactly
  once, N = non-null rows): the probability that the next value is one the baseline never saw.
  It needs no split, streams, and means the same for training data and for logs.
- Held-out split: row i is held out when splitmix64(seed, i) falls under ``heldout_fraction``; the
  split depends only on the row number, so chunking never changes a baseline. The vocabulary is
  fitted on the other rows (document frequencies, top ``top_k_vocab`` by frequency then token);
  ``text_docs`` is the number of fit documents with at least one token (the frequencies'
  denominator); ``heldout_docs`` counts held-out documents with at least one token and
  ``heldout_oov_docs`` those of them with a token outside the vocabulary. Categories, nulls and
  numeric bins use every row.
- Numeric edges: the quantiles 1/bins .. (bins-1)/bins (numpy's linear interpolation), duplicates
  removed, so ``bins`` equal-mass bins; ``bin_counts`` follow the numeric table convention of
  ``analytics.model`` (bin 0 is (-inf, e0), the last is [e_last, inf)). Edges and quantiles come
  from a bottom-k sample: the ``sample_size`` (100k) values whose row hash is smallest, a uniform
  sample that is also independent of chunking; when a feature has at most ``sample_size`` values
  the sample is all of them and everything is exact. Bin counts are always exact: counted on the
  sample when it holds every value, otherwise in a second pass over the data.
- A second pass (re-reading the file) happens only when there are text features to measure on
  the held-out rows or numeric features with more values than the sample; memory stays bounded
  by the number of distinct categories and tokens plus the samples, never by the file size.
"""

from inferwatch.analytics.baseline.builder import (
    QUANTILES,
    SAMPLE_SIZE,
    BaselineBuilder,
    build_baseline,
    build_baseline_chunks,
    good_turing_unseen,
    heldout_mask,
    infer_kind,
    top_vocabulary,
)
from inferwatch.analytics.baseline.codec import (
    FORMAT,
    baseline_from_dict,
    baseline_from_json,
    baseline_to_dict,
    baseline_to_json,
    summary_table,
)
from inferwatch.analytics.baseline.logs import build_from_counts, hourly_volume
from inferwatch.analytics.baseline.training import (
    build_baseline_from_file,
    column_keys,
    read_training,
    training_rows,
)

__all__ = [
    "FORMAT",
    "QUANTILES",
    "SAMPLE_SIZE",
    "BaselineBuilder",
    "baseline_from_dict",
    "baseline_from_json",
    "baseline_to_dict",
    "baseline_to_json",
    "build_baseline",
    "build_baseline_chunks",
    "build_baseline_from_file",
    "build_from_counts",
    "column_keys",
    "good_turing_unseen",
    "heldout_mask",
    "hourly_volume",
    "infer_kind",
    "read_training",
    "summary_table",
    "top_vocabulary",
    "training_rows",
]
