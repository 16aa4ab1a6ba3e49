"""Release: the guidance-free export of a training run (``export``, ``elegance-export``) and its verified upload to
the Hub (``push``, ``elegance-push``)."""
