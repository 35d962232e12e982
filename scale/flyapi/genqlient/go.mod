module github.com/Khan/genqlient

go 1.22.5

require (
	github.com/google/uuid v1.6.0
	github.com/vektah/gqlparser/v2 v2.5.19
)
