"""dvr: distributed virtual routing for Open vSwitch clouds."""
