"""minigan's layers: each has forward(x, training=True) and backward(dy) -> dx."""
from .activations import LeakyReLU, ReLU, Sigmoid, Tanh
from .base import Layer
from .batchnorm import BatchNorm
from .conv import Conv2D, ConvTranspose2D, col2im, im2col
from .dense import Dense
from .sequential import Sequential
from .shape import Flatten, Reshape

__all__ = ["Layer", "Dense", "Conv2D", "ConvTranspose2D", "BatchNorm", "LeakyReLU", "ReLU",
           "Tanh", "Sigmoid", "Reshape", "Flatten", "Sequential", "im2col", "col2im"]
