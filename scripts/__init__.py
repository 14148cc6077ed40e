"""Scripts the Makefile runs (demo, stand-ins, the image build); a package so tests import them."""
