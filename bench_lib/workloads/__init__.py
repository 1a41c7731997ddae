"""Models and the real data they run on; every data set ships inside an installed package."""
