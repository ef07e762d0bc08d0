package client

// ExampleNode lets the examples (package client_test) start a hub.
var ExampleNode = exampleNode
