package collector

// RouteForTest is a served route for the tests of package collector_test: its pattern
// ("GET /v1/…"), the scope its token needs ("" for none) and the query parameters it takes.
type RouteForTest struct {
	Pattern, Scope string
	Params         []string
}

// RoutesForTest lists the routes the service's handler serves.
func (s *Service) RoutesForTest() []RouteForTest {
	_, routes := s.api.handler(s.MetricsHandler())
	out := make([]RouteForTest, len(routes))
	for i, r := range routes {
		out[i] = RouteForTest{Pattern: r.pattern, Scope: string(r.scope), Params: r.params}
	}
	return out
}
