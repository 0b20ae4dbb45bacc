"""Pictures: PNG/GIF strips, filter and colour-scale drawings (:mod:`~dfn.pictures.viz`) and loss
curves from a run's logs (:mod:`~dfn.pictures.curves`)."""
