import OCPPWire
