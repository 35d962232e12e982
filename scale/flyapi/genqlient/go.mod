module github.com/Khan/genqlient

go 1.22
