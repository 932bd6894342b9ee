"""ECG datasets of the experiment runner: CinC 2017 rhythm (:mod:`.cinc2017`) and MIT-BIH
beats under the de Chazal inter-patient protocol (:mod:`.mitbih`)."""
