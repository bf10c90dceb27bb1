"""minigan's layers. The contract every layer keeps is written once, in base.Layer's
docstring: forward(x, training=True) -> y, backward(dy, param_grads=True) -> dx."""
from .activations import Elementwise, LeakyReLU, ReLU, Sigmoid, Tanh
from .augment import DiffAugment
from .base import Layer, in_reference_mode, reference_mode
from .batchnorm import BatchNorm
from .conv import Conv2D, ConvTranspose2D, col2im, im2col
from .dense import Dense
from .dropout import Dropout
from .minibatch import MinibatchDiscrimination, MinibatchStdDev, Pack
from .sequential import Sequential
from .shape import Flatten, Reshape
from .spectral import SpectralNorm

__all__ = ["Layer", "Elementwise", "Dense", "Conv2D", "ConvTranspose2D", "BatchNorm", "LeakyReLU", "ReLU",
           "Tanh", "Sigmoid", "Dropout", "Reshape", "Flatten", "Sequential", "im2col", "col2im",
           "SpectralNorm", "MinibatchStdDev", "MinibatchDiscrimination", "DiffAugment", "Pack",
           "reference_mode", "in_reference_mode"]
