from .curves import plot_training_curves
from .panels import predict_with_subcentroids, save_prediction_panel

__all__ = ['plot_training_curves', 'predict_with_subcentroids', 'save_prediction_panel']
