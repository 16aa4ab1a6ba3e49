"""Models trained before the extractor: the lip reader whose encoder the backbones start from (``lip_reading``,
``elegance-pretrain-lips``) and the package's own PSLM for output guidance (``pslm``, ``elegance-pretrain-pslm``)."""
